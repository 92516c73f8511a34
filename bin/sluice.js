#!/usr/bin/env node
// The `sluice` command. tsx's ESM loader is registered first so that pipeline files written in
// TypeScript (and Sluice's own sources) load without a build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
