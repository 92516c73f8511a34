// Entry point of the `sluice` command (bin/sluice.js imports it after registering tsx).
import { createProgram } from './program.js';

await createProgram().parseAsync(process.argv);
