import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CheckpointDirectory } from '../../src/checkpoint/index.js';
import { stateStoreConformance } from '../conformance/state-store.js';

// A checkpoint directory holds one pipeline: one directory per place, reopened for durability.
const root = await mkdtemp(path.join(os.tmpdir(), 'sluice-state-conformance-'));
stateStoreConformance(
  'CheckpointDirectory',
  (place) => new CheckpointDirectory({ dir: path.join(root, place) }),
);
