// Adds a file to the package's supabase/migrations when the migrations in code changed: `npm run generate:migration`.
// Released files are never rewritten (a Supabase project that applied one would not run it again).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { migrationFileName, newestMigrationFile, renderSupabaseMigrationFile, SUPABASE_MIGRATIONS_DIR } from './src/supabase-migration-file.js';

const dir = fileURLToPath(new URL(`${SUPABASE_MIGRATIONS_DIR}/`, import.meta.url));
const newest = newestMigrationFile(readdirSync(dir));
const text = renderSupabaseMigrationFile();
if (newest && readFileSync(`${dir}${newest}`, 'utf8') === text) {
  console.log(`${SUPABASE_MIGRATIONS_DIR}/${newest} is up to date`);
} else {
  const name = migrationFileName();
  writeFileSync(`${dir}${name}`, text);
  console.log(`wrote ${SUPABASE_MIGRATIONS_DIR}/${name}`);
}
