import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { CheckpointDirectory } from '../../src/checkpoint/directory.js';
import { offsetStoreFromSpec } from '../../src/cli/store-spec.js';

describe('checkpoint:<dir> store specs', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const tmp = async () => {
    const d = await mkdtemp(path.join(os.tmpdir(), 'sluice-spec-'));
    dirs.push(d);
    return d;
  };

  it("opens a stateful pipeline's checkpoint directory, so offsets shown are the ones it resumes from", async () => {
    const dir = await tmp();
    const cp = new CheckpointDirectory({ dir });
    const meta = { pipelineId: 'p', fingerprint: 'f', operators: [], batchTime: 1000 };
    await cp.commitBatch('g', [{ topic: 't', partition: 0, fromOffset: 0, untilOffset: 7 }], meta, {
      full: new Map(),
      deltas: new Map(),
    });
    await cp.close();
    const store = offsetStoreFromSpec(`checkpoint:${dir}`);
    assert.equal(store.kind, 'checkpoint-dir');
    assert.deepEqual(await store.read('g', ['t']), [{ topic: 't', partition: 0, offset: 7 }]);
    await store.close();
  });

  it('opens the offsets-only layout for a directory without a manifest', async () => {
    const store = offsetStoreFromSpec(`checkpoint:${await tmp()}`);
    assert.equal(store.kind, 'checkpoint');
    await store.close();
  });
});
