import { sinkTests } from '../sql-stores/sink.js';
import { postgresFixture } from './helpers.js';

sinkTests(await postgresFixture());
