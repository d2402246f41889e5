import type { MailToolName } from '../create-mail-tools.js';

/**
 * A valid input for every tool, operator tools included, for tests that call each one. Typed by the name union, so a
 * tool added without a sample here does not compile. Override the few a test needs otherwise.
 */
export function sampleToolInputs(overrides: Partial<Record<MailToolName, unknown>> = {}): Record<MailToolName, unknown> {
  return {
    send_email: { to: 'ada@example.com', subject: 's', body: 'x' },
    get_email_status: { id: 'msg_1' },
    test_smtp_connection: {},
    get_smtp_status: {},
    switch_smtp_server: { name: 'x' },
    reload_smtp_configuration: {},
    reconnect_smtp_servers: {},
    get_email_stats: {},
    list_pending_emails: {},
    approve_email: { id: 'msg_1' },
    reject_email: { id: 'msg_1' },
    list_audit_entries: {},
    list_suppressions: {},
    suppress_address: { address: 'x@example.com' },
    unsuppress_address: { address: 'x@example.com' },
    ...overrides,
  };
}
