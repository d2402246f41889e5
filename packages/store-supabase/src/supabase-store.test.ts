import type { MailStore } from '@agent-smtp/core';
import { runStoreContract } from '@agent-smtp/testing/store-contract';
import { createSupabaseStore } from './supabase-store.js';
import { DATABASE_URL, startTestProject, type TestProject } from './test-support/test-project.js';

// The shared MailStore contract through supabase-js with the service-role key, against the PostgREST-contract test
// server over the PostgreSQL server in DATABASE_URL when it is set, else over PGlite (once: through HTTP the suite
// takes long enough that running it on both would double the package's test time).
const projects = new Map<MailStore, TestProject>();

runStoreContract({
  name: `Supabase (supabase-js, PostgREST contract, ${DATABASE_URL ? 'PostgreSQL server' : 'PGlite'})`,
  create: async () => {
    const project = await startTestProject({ database: DATABASE_URL ? 'server' : 'pglite' });
    const store = createSupabaseStore({ client: project.serviceClient(), schema: project.schema });
    projects.set(store, project);
    return store;
  },
  cleanup: async (store) => {
    await projects.get(store)?.close();
    projects.delete(store);
  },
});
