/** `sluice/checkpoint`: offsets (and, later, state) in a checkpoint directory on the local file system. */
export * from './offset-store.js';
