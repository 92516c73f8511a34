/**
 * The crash test from the command line (`npm run crash-test` runs the long form):
 *
 *   node --import tsx test/crash/run.ts [--long] [--modes m1,m2] [--records N] [--kills K] [--seed S]
 *     [--partitions P] [--interval MS] [--quiet]
 *
 * --long: 100,000 records and 24 SIGKILLs per mode (else 4,000 and 6, as npm test), then the
 * scale-out chaos test (test/crash/group-chaos.ts) with --chaos-actions actions (long: 30; without
 * --long it runs only when --chaos-actions is given). Modes default to all of
 * them (see test/crash/modes.ts). Prints a summary per mode; exits 1 if any mode breaks its
 * guarantee (exactly-once: a duplicate or a loss; at-least-once: a loss or no duplicate;
 * at-most-once: a duplicate or no loss) or the harness fails.
 */
import { parseArgs } from 'node:util';
import { formatGroupChaos, runGroupChaos } from './group-chaos.js';
import { formatSummary, runCrashTest, violation, type CrashResult } from './harness.js';
import { MODES, isMode, type Mode } from './modes.js';

const { values } = parseArgs({
  options: {
    long: { type: 'boolean', default: false },
    modes: { type: 'string' },
    records: { type: 'string' },
    kills: { type: 'string' },
    seed: { type: 'string' },
    partitions: { type: 'string' },
    interval: { type: 'string' },
    quiet: { type: 'boolean', default: false },
    'chaos-actions': { type: 'string' },
  },
});

const modes: Mode[] = values.modes
  ? values.modes.split(',').map((m) => {
      if (!isMode(m)) throw new Error(`unknown mode ${m}; modes: ${MODES.join(', ')}`);
      return m;
    })
  : [...MODES];
const records = Number(values.records ?? (values.long ? 100_000 : 4_000));
const kills = Number(values.kills ?? (values.long ? 24 : 6));
const seed = values.seed === undefined ? undefined : Number(values.seed);
const partitions = values.partitions === undefined ? undefined : Number(values.partitions);
const intervalMs = values.interval === undefined ? undefined : Number(values.interval);

const results: CrashResult[] = [];
const failures: string[] = [];
const t0 = Date.now();
for (const mode of modes) {
  console.log(`\n== ${mode}: ${records} records, ${kills} SIGKILLs`);
  try {
    const result = await runCrashTest({
      mode,
      records,
      kills,
      ...(seed !== undefined ? { seed } : {}),
      ...(partitions !== undefined ? { partitions } : {}),
      ...(intervalMs !== undefined ? { intervalMs } : {}),
      progress: values.quiet ? undefined : (line) => console.log(`   ${line}`),
    });
    results.push(result);
    console.log(formatSummary(result));
    const why = violation(result);
    console.log(why ? `  FAILED: ${why}` : `  OK: ${result.guarantee} ${verdict(result)}`);
    if (why) failures.push(`${mode}: ${why}`);
  } catch (e) {
    console.log(`  ERROR: ${(e as Error).stack ?? String(e)}`);
    failures.push(`${mode}: ${(e as Error).message.split('\n')[0]}`);
  }
}

const chaosActions = values['chaos-actions'] !== undefined ? Number(values['chaos-actions']) : values.long ? 30 : 0;
if (chaosActions > 0) {
  console.log(`\n== group-chaos: 3 instances, ${chaosActions} actions and a broker restart`);
  try {
    const r = await runGroupChaos({
      instances: 3,
      actions: chaosActions,
      ...(seed !== undefined ? { seed } : {}),
      progress: values.quiet ? undefined : (line) => console.log(`   ${line}`),
    });
    console.log(formatGroupChaos(r));
    console.log('  OK: exactly-once through kills, joins, leaves and a broker restart');
  } catch (e) {
    console.log(`  ERROR: ${(e as Error).stack ?? String(e)}`);
    failures.push(`group-chaos: ${(e as Error).message.split('\n')[0]}`);
  }
}

console.log(
  `\n== crash-test: ${results.length}/${modes.length} modes ran in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
);
console.log('mode                 guarantee      records kills restarts dups   missing time');
for (const r of results) {
  console.log(
    `${r.mode.padEnd(20)} ${r.guarantee.padEnd(14)} ${String(r.records).padStart(7)} ${String(r.kills).padStart(5)} ${String(r.restarts).padStart(8)} ${String(r.duplicates).padStart(6)} ${String(r.missing).padStart(7)} ${(r.durationMs / 1000).toFixed(0).padStart(4)} s`,
  );
}
if (failures.length) {
  console.log(`\nFAILED:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log('\nall modes kept their guarantee');

function verdict(r: CrashResult): string {
  if (r.guarantee === 'exactly-once') return 'holds: every input record exactly once';
  if (r.guarantee === 'at-least-once')
    return `holds: nothing lost, ${r.duplicates} duplicated by kills after the write`;
  return `holds: nothing duplicated, ${r.missing} lost by kills after the offsets`;
}
