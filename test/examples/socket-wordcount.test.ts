import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import {
  ChildRun,
  afterTests,
  countsOf,
  parsePrintedBatches,
  sameCounts,
  sortedEntries,
  totalCounts,
  wordCounts,
} from './child-process.js';

const { runs, cleanups } = afterTests();

/** A real TCP server on a free port; resolves the first connection's socket when it arrives. */
async function lineServer(): Promise<{ port: number; connection: Promise<net.Socket> }> {
  let accept!: (s: net.Socket) => void;
  const connection = new Promise<net.Socket>((r) => (accept = r));
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    accept(socket);
  });
  cleanups.push(() => new Promise((r) => server.close(r)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, connection };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string, run: ChildRun): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`timed out after ${ms} ms waiting for ${what}\n${run.output()}`)),
        ms,
      );
    }),
  ]);
}

test('socket-wordcount example prints per-batch word counts of the lines a TCP server sends, and exits 0 on SIGINT', async () => {
  const { port, connection } = await lineServer();
  const run = ChildRun.sluice(['run', 'examples/socket-wordcount.ts'], {
    SOCKET_HOST: '127.0.0.1',
    SOCKET_PORT: String(port),
    BATCH_INTERVAL_MS: '500',
  });
  runs.push(run);
  const socket = await withTimeout(connection, 20_000, 'the example to connect to the TCP server', run);

  // First burst: 40 lines; the batch that gets them prints one (word,count) line per word.
  const first =
    Array.from({ length: 40 }, (_, i) => `the quick brown fox ${i % 2 === 0 ? 'jumps' : 'sleeps'}`).join(
      '\n',
    ) + '\n';
  socket.write(first);
  const expectedFirst = wordCounts(first);
  await run.waitFor(
    (out) => sameCounts(totalCounts(out), expectedFirst),
    'the counts of the first burst',
    15_000,
  );
  assert.deepEqual(sortedEntries(totalCounts(run.stdout)), [
    ['brown', 40],
    ['fox', 40],
    ['jumps', 20],
    ['quick', 40],
    ['sleeps', 20],
    ['the', 40],
  ]);

  // Second burst, split across writes mid-line: a later batch counts only the new lines.
  const batchesBefore = parsePrintedBatches(run.stdout).length;
  const second = 'the lazy dog\nthe lazy '.repeat(5) + 'cat\n';
  socket.write(second.slice(0, 17));
  await new Promise((r) => setTimeout(r, 50));
  socket.write(second.slice(17));
  const expectedAll = wordCounts(first + second);
  await run.waitFor((out) => sameCounts(totalCounts(out), expectedAll), 'the counts of both bursts', 15_000);
  const later = parsePrintedBatches(run.stdout).slice(batchesBefore);
  const laterTotals = new Map<string, number>();
  for (const b of later) for (const [w, n] of countsOf(b)) laterTotals.set(w, (laterTotals.get(w) ?? 0) + n);
  assert.deepEqual(sortedEntries(laterTotals), sortedEntries(wordCounts(second)), run.output());

  // Batch times are increasing multiples of the 500 ms interval.
  const times = parsePrintedBatches(run.stdout).map((b) => b.time);
  assert.ok(times.length >= 2, run.output());
  for (const [i, t] of times.entries()) {
    assert.equal(t % 500, 0, `batch time ${t} is a multiple of the interval`);
    if (i > 0) assert.ok(t > times[i - 1]!, 'batch times increase');
  }

  const exit = await run.stop('SIGINT');
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  assert.match(run.stderr, /stopping gracefully/);
});
