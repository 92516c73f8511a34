import { statefulTransactionTests } from '../relational/stateful-transaction.js';
import { mysqlFixture } from './helpers.js';

// A transactional MySqlSink on the MySqlOffsetStore that is the pipeline's checkpoint: each batch's
// rows, offsets and operator state commit in one MySQL/MariaDB transaction.
statefulTransactionTests(await mysqlFixture());
