/**
 * Case 1 — word count over a socket text stream, printed per batch (Spark's NetworkWordCount).
 *
 * Run it:
 *   nc -lk 9999                                  # terminal 1: a TCP server; type lines into it
 *   npx sluice run examples/socket-wordcount.ts  # terminal 2; Ctrl-C stops it after the running batch
 *
 * Environment (all optional):
 *   SOCKET_HOST        host of the TCP server (default 127.0.0.1)
 *   SOCKET_PORT        its port (default 9999)
 *   BATCH_INTERVAL_MS  batch interval in ms (default 1000)
 *   PRINT_LIMIT        most (word,count) pairs printed per batch (default 100)
 *
 * Each batch prints Spark's header (`Time: <ms> ms`) and one `(word,count)` line per word seen in
 * that batch's lines. The socket source is at-most-once: lines sent while the job is down are lost.
 */
import { definePipeline, socketTextStream } from 'sluice';

const host = process.env.SOCKET_HOST ?? '127.0.0.1';
const port = Number(process.env.SOCKET_PORT ?? 9999);
const batchInterval = Number(process.env.BATCH_INTERVAL_MS ?? 1000);
const printLimit = Number(process.env.PRINT_LIMIT ?? 100);

export default definePipeline({
  pipelineId: 'socket-wordcount',
  batchInterval,
  build(ctx) {
    socketTextStream(ctx, host, port, { name: 'lines' })
      .flatMap((line) => line.split(/\s+/).filter((w) => w !== ''), { name: 'words' })
      .mapToPair((word) => [word, 1], { name: 'pairs' })
      .reduceByKey((a, b) => a + b, { name: 'counts' })
      .print(printLimit, { name: 'print-counts' });
  },
});
