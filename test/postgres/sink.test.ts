import { sinkTests } from '../relational/sink.js';
import { postgresFixture } from './helpers.js';

sinkTests(await postgresFixture());
