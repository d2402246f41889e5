import { afterAll } from 'vitest';
import { runProjectSuite } from './test-support/project-suite.js';
import { DATABASE_URL, startTestProject, type TestProject } from './test-support/test-project.js';

// The real-project suite (supabase-project.int.test.ts) against the in-suite test project, users made through its
// Supabase Auth emulation; the store contract itself runs in supabase-store.test.ts.
let started: Promise<TestProject> | undefined;
afterAll(async () => {
  await (await started)?.close();
});

runProjectSuite(
  `in-suite test project (${DATABASE_URL ? 'PostgreSQL server' : 'PGlite'})`,
  () => (started ??= startTestProject({ database: DATABASE_URL ? 'server' : 'pglite' })).then((p) => ({ url: p.url, anonKey: p.anonKey, serviceRoleKey: p.serviceRoleKey, schema: p.schema })),
  { contract: false },
);
