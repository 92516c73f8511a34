import { stateStoreTests } from '../sql-stores/state-store.js';
import { postgresFixture } from './helpers.js';

stateStoreTests(await postgresFixture());
