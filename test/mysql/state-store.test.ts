import { stateStoreTests } from '../relational/state-store.js';
import { mysqlFixture } from './helpers.js';

stateStoreTests(await mysqlFixture());
