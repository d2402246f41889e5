// Writes the package's supabase/migrations file from the migrations in code: `npm run generate:migration`.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderSupabaseMigrationFile, SUPABASE_MIGRATION_FILE } from './src/supabase-migration-file.js';

const target = fileURLToPath(new URL(SUPABASE_MIGRATION_FILE, import.meta.url));
writeFileSync(target, renderSupabaseMigrationFile());
console.log(`wrote ${SUPABASE_MIGRATION_FILE}`);
