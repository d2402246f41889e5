import { describe } from 'vitest';
import { projectFromEnv, runProjectSuite } from './test-support/project-suite.js';

// Against a real Supabase project, where one is configured: SUPABASE_URL, SUPABASE_ANON_KEY and
// SUPABASE_SERVICE_ROLE_KEY (AGENT_SMTP_SCHEMA if not agent_smtp), with the package's migration applied and the
// schema exposed in the API settings. Use a project for tests only. The same suite runs on every `npm test` against
// the in-suite test project (project-suite.test.ts), so this file's code is exercised even where no project is set.
const project = projectFromEnv();

describe.skipIf(!project)('a real Supabase project (skipped: SUPABASE_URL is not set)', () => {
  runProjectSuite('Supabase project at SUPABASE_URL', async () => project!, { contract: true });
});
