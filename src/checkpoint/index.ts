/**
 * `sluice/checkpoint`: checkpoints on the local file system. `CheckpointDirectory` keeps a
 * pipeline's operator state and offsets together (the `checkpoint` of a StreamingContext), in a
 * directory whose `manifest.json` is readable; `CheckpointDirOffsetStore` keeps offsets only.
 */
export {
  CheckpointDirectory,
  CheckpointPipelineMismatchError,
  type CheckpointDirectoryOptions,
} from './directory.js';
export {
  CheckpointCorruptError,
  MANIFEST_FILE,
  readManifest,
  type CheckpointManifest,
  type GroupOffset,
} from './files.js';
export {
  CheckpointDirOffsetStore,
  type CheckpointDirOffsetStoreOptions,
  type CheckpointOffsetsFile,
} from './offset-store.js';
