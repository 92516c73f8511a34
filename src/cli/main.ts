// Entry point of the `sluice` command (bin/sluice.js imports it as `#cli`).
import { createProgram } from './program.js';

await createProgram().parseAsync(process.argv);
