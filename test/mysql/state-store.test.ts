import { stateStoreTests } from '../sql-stores/state-store.js';
import { mysqlFixture } from './helpers.js';

stateStoreTests(await mysqlFixture());
