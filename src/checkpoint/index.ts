/**
 * `sluice/checkpoint`: checkpoints on the local file system. `CheckpointDirectory` keeps a
 * pipeline's operator state and offsets together (the `checkpoint` of a StreamingContext);
 * `CheckpointDirOffsetStore` keeps offsets only.
 */
export * from './offset-store.js';
export * from './directory.js';
