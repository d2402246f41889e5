// A separate entry from the package root: it imports vitest, which apps that only want the dev SMTP sink do not have.
export { runStoreContract } from './run-store-contract.js';
export type { StoreContractOptions } from './run-store-contract.js';
export { newOutboxRecord, sampleStoredEmail } from './outbox-record-fixture.js';
