#!/usr/bin/env node
// The `sluice` command: runs the CLI module that the package import `#cli` names (package.json "imports").
//
// - Installed package: `#cli` is dist/cli/main.js, compiled JavaScript. No TypeScript loader is loaded;
//   `sluice run pipeline.ts` registers tsx's loader itself, only for a TypeScript pipeline file
//   (src/cli/load.ts), so `sluice run pipeline.js` never loads tsx.
// - Source checkout (src/cli/main.ts beside this file; the published package has no src/): the sources
//   run under tsx's loader with the `sluice-dev` condition, so `#cli` and every `import 'sluice'` (the
//   examples) resolve to src/. No build is needed, and a dist/ left by `npm pack` is never run stale.
//   The condition is on already when NODE_OPTIONS has --conditions=sluice-dev (scripts/run-tests.mjs,
//   the npm scripts); otherwise it is switched on here, in this process by a resolve hook
//   (bin/dev-conditions.js) and for the node processes it starts (`sluice run --supervise`) through
//   NODE_OPTIONS.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

const DEV = 'sluice-dev';

if (existsSync(new URL('../src/cli/main.ts', import.meta.url))) {
  if (!import.meta.resolve('#cli').endsWith('.ts')) {
    register('./dev-conditions.js', import.meta.url);
    process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --conditions=${DEV}`.trim();
  }
  const tsx = await import('tsx/esm/api');
  tsx.register();
}

await import('#cli');
