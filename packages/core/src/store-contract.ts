// A separate entry from ./testing: it imports vitest, which apps that only want the dev SMTP sink do not have.
export { runStoreContract } from './testing/store-contract.js';
export type { StoreContractOptions } from './testing/store-contract.js';
export { newOutboxRecord, sampleStoredEmail } from './testing/outbox-record-fixture.js';
