/** The Index contract (index-contract.ts) run against SqliteIndex, in memory. */
import { indexContract } from './index-contract.ts';
import { SqliteIndex } from './index-sqlite.ts';

indexContract({ name: 'SqliteIndex', open: async () => SqliteIndex.open(':memory:') });
