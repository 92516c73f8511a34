import { stateStoreTests } from '../relational/state-store.js';
import { postgresFixture } from './helpers.js';

stateStoreTests(await postgresFixture());
