import { migration001 } from './001-init.js';
import { migration002 } from './002-store-clock.js';
import { migration003 } from './003-reads-and-cursor.js';
import { migration004 } from './004-smtp-configs.js';
import { migration005 } from './005-approval-audit-policies.js';
import { migration006 } from './006-stats.js';
import { migration007 } from './007-dkim.js';
import { migration008 } from './008-owner-due-index.js';
import { migration009 } from './009-enqueue-many-set-based.js';

export interface Migration {
  /** Applied in ascending order; recorded in `<schema>.migrations`. */
  version: number;
  name: string;
  /** SQL with `{{schema}}` where the quoted schema name goes. */
  sql: string;
}

/** Every migration, oldest first. Add new ones at the end; never edit one that was released. */
export const migrations: readonly Migration[] = [
  { version: 1, name: '001_init', sql: migration001 },
  { version: 2, name: '002_store_clock', sql: migration002 },
  { version: 3, name: '003_reads_and_cursor', sql: migration003 },
  { version: 4, name: '004_smtp_configs', sql: migration004 },
  { version: 5, name: '005_approval_audit_policies', sql: migration005 },
  { version: 6, name: '006_stats', sql: migration006 },
  { version: 7, name: '007_dkim', sql: migration007 },
  { version: 8, name: '008_owner_due_index', sql: migration008 },
  { version: 9, name: '009_enqueue_many_set_based', sql: migration009 },
];
