import assert from 'node:assert/strict';
import { it } from 'node:test';
import { offsetStoreTests, range } from '../relational/offset-store.js';
import { mysqlFixture, uniqueTable } from './helpers.js';

offsetStoreTests(await mysqlFixture(), (open) => {
  it('keeps topics that differ only in letter case apart', async () => {
    const s = open();
    const topic = uniqueTable('t');
    await s.write('g', [range(topic, 0, 0, 1), range(topic.toUpperCase(), 0, 0, 2)]);
    assert.deepEqual(await s.read('g', [topic]), [{ topic, partition: 0, offset: 1 }]);
  });
});
