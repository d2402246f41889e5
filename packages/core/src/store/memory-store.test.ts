import { runStoreContract } from '../testing/store-contract.js';
import { MemoryStore } from './memory-store.js';

runStoreContract({ name: 'MemoryStore', create: () => new MemoryStore() });
