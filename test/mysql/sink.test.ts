import assert from 'node:assert/strict';
import { it } from 'node:test';
import { InvalidOptionError } from '../../src/core/errors.js';
import { sinkCtx, sinkTests } from '../relational/sink.js';
import { mysqlFixture } from './helpers.js';

sinkTests(await mysqlFixture(), ({ table, make }) => {
  it('open refuses an upsert key that is not the primary key or a unique index of the table', async () => {
    const plain = await table('sink_nokey', false);
    const keyed = await table('sink_key', true);
    await assert.rejects(
      make({ table: plain, mode: 'upsert', key: ['id'] }).open(sinkCtx),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'key',
    );
    await assert.rejects(
      make({ table: keyed, mode: 'upsert', key: ['id', 'n'] }).open(sinkCtx),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'key',
    );
    await make({ table: keyed, mode: 'upsert', key: ['id'] }).open(sinkCtx);
  });
});
