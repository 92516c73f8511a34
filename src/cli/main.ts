// Entry point of the `sluice` command (bin/sluice.js imports it as `#cli`).
import { formatError } from './errors.js';
import { createProgram } from './program.js';

try {
  await createProgram().parseAsync(process.argv);
} catch (e) {
  // What no command caught: one escaped line `sluice: CODE: message`, as every CLI error.
  process.stderr.write(`sluice: ${formatError(e)}\n`);
  process.exitCode = 1;
}
