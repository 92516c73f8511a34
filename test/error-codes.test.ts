import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as cli from '../src/cli/errors.js';
import { OffsetStoreAccessError } from '../src/cli/offsets.js';
import * as checkpoint from '../src/checkpoint/directory.js';
import * as core from '../src/core/errors.js';
import { KafkaProducerFencedError } from '../src/kafka/transactions.js';
import * as redis from '../src/redis/errors.js';
import * as sql from '../src/duckdb/errors.js';
import * as zookeeper from '../src/zookeeper/errors.js';

// Adapters keep their own error classes next to their code; the codes form one catalogue.
const classes = (
  [
    ...Object.values(core),
    ...Object.values(cli),
    ...Object.values(checkpoint),
    ...Object.values(redis),
    ...Object.values(sql),
    ...Object.values(zookeeper),
    OffsetStoreAccessError,
    KafkaProducerFencedError,
  ] as unknown[]
).filter(
  (v): v is { name: string; code: string } =>
    typeof v === 'function' && (v as { prototype: unknown }).prototype instanceof core.SluiceError,
);

it('every error class across the project has its own stable SLUICE_ code', () => {
  assert.ok(classes.length >= 20, `found ${classes.length} classes`);
  const codes = new Map<string, string>();
  for (const c of classes) {
    assert.match(c.code, /^SLUICE_[A-Z_]+$/, `${c.name} has code ${c.code}`);
    assert.ok(!codes.has(c.code), `${c.name} and ${codes.get(c.code)} share ${c.code}`);
    codes.set(c.code, c.name);
  }
});
