import { statefulTransactionTests } from '../relational/stateful-transaction.js';
import { postgresFixture } from './helpers.js';

// A transactional PostgresSink on the PostgresOffsetStore that is the pipeline's checkpoint: each
// batch's rows, offsets and operator state commit in one PostgreSQL transaction.
statefulTransactionTests(await postgresFixture());
