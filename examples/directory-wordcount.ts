/**
 * Case 2 — word count over the new text files of a directory, printed per batch (Spark's
 * HdfsWordCount with textFileStream).
 *
 * Run it:
 *   npx sluice run examples/directory-wordcount.ts      # Ctrl-C stops it after the running batch
 *   # in another terminal: write a file elsewhere, then MOVE it in (a rename, so it is never read half-written)
 *   echo "to be or not to be" > /tmp/words.txt && mv /tmp/words.txt /tmp/sluice-incoming/
 *
 * Environment (all optional):
 *   WATCH_DIR          the watched directory (default /tmp/sluice-incoming, created if missing)
 *   BATCH_INTERVAL_MS  batch interval in ms (default 1000)
 *   PRINT_LIMIT        most (word,count) pairs printed per batch (default 100)
 *
 * Each file that appears is read once (the names already read are kept in
 * `<WATCH_DIR>/.sluice-read-files.json`, so a restart does not read them again). Each batch prints
 * Spark's header (`Time: <ms> ms`) and one `(word,count)` line per word of the files it read.
 */
import { definePipeline, textFileStream } from 'sluice';

const directory = process.env.WATCH_DIR ?? '/tmp/sluice-incoming';
const batchInterval = Number(process.env.BATCH_INTERVAL_MS ?? 1000);
const printLimit = Number(process.env.PRINT_LIMIT ?? 100);

export default definePipeline({
  pipelineId: 'directory-wordcount',
  batchInterval,
  build(ctx) {
    textFileStream(ctx, directory, { name: 'files' })
      .flatMap((line) => line.split(/\s+/).filter((w) => w !== ''), { name: 'words' })
      .countByValue({ name: 'counts' })
      .print(printLimit, { name: 'print-counts' });
  },
});
