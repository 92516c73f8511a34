/**
 * Case 8 — blacklist filter: access-log lines `ip##time##request##status##bytes` from Kafka; lines
 * whose IP is in a blacklist are dropped. The blacklist is reference data kept in a file that can
 * change while the job runs: it is read again at every batch, and each batch joins its lines with
 * it (a left outer join keyed by IP, keeping the lines with no match), as Spark's
 * `transform(rdd => rdd.leftOuterJoin(blacklistRdd).filter(!_._2._2.isDefined))`.
 *
 * Run it:
 *   npx sluice kafka start                                   # a local broker (or set KAFKA_BOOTSTRAP)
 *   echo 10.0.0.2 > /tmp/sluice-blacklist.txt                # one IP per line; # starts a comment
 *   npx sluice run examples/blacklist-filter.ts              # Ctrl-C stops it after the running batch
 *   # in another terminal, send log lines:
 *   node --import tsx -e "const { sharedProducer } = await import('sluice/kafka'); const p = await sharedProducer();
 *     await p.send('sluice-access-log', ['10.0.0.1##2024-05-01T10:00:00Z##GET /##200##512',
 *       '10.0.0.2##2024-05-01T10:00:01Z##GET /admin##403##0']); await p.close();"
 *   # blacklist another IP while it runs: the next batch drops its lines
 *   echo 10.0.0.1 >> /tmp/sluice-blacklist.txt
 *
 * Environment (all optional):
 *   BLACKLIST_FILE     the blacklist (default /tmp/sluice-blacklist.txt; a missing file is an empty list)
 *   KAFKA_BOOTSTRAP    bootstrap servers (default 127.0.0.1:9092)
 *   KAFKA_TOPIC        topic to read (default sluice-access-log; created with KAFKA_PARTITIONS partitions)
 *   KAFKA_PARTITIONS   partitions of a topic the example creates (default 2)
 *   STARTING_OFFSETS   earliest | latest: where the first run starts (default earliest)
 *   BATCH_INTERVAL_MS  batch interval in ms (default 1000)
 *
 * Output: whenever the blacklist read at a batch differs from the one before (and at the first batch):
 *   blacklist v2 at 1700000001000: 10.0.0.1, 10.0.0.2
 * then per batch, the kept lines under a header saying which blacklist version filtered them:
 *   -------------------------------------------
 *   Time: 1700000001000 ms — kept 1 of 2 lines (blacklist v2)
 *   -------------------------------------------
 *   10.0.0.3##2024-05-01T10:00:02Z##GET /##200##512
 */
import { readFile } from 'node:fs/promises';
import { definePipeline } from 'sluice';
import { createDirectStream } from 'sluice/kafka';

const blacklistFile = process.env.BLACKLIST_FILE ?? '/tmp/sluice-blacklist.txt';
const topic = process.env.KAFKA_TOPIC ?? 'sluice-access-log';
const partitions = Number(process.env.KAFKA_PARTITIONS ?? 2);
const startingOffsets = process.env.STARTING_OFFSETS === 'latest' ? 'latest' : 'earliest';
const batchInterval = Number(process.env.BATCH_INTERVAL_MS ?? 1000);

/** The IP of an access-log line: its first `##` field. */
function ipOf(line: string): string {
  return line.split('##', 1)[0]!.trim();
}

/**
 * The blacklist file, read again at every batch (a few lines: cheaper than watching it, and a
 * change is seen by the very next batch). Versions count the changes seen.
 */
class Blacklist {
  version = 0;
  #ips: string[] | undefined;

  constructor(readonly file: string) {}

  /** The IPs in the file now; a missing file is an empty blacklist. Logs a new version when they changed. */
  async load(batchTime: number): Promise<string[]> {
    let text = '';
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const ips = [
      ...new Set(
        text
          .split('\n')
          .map((l) => l.replace(/#.*/, '').trim())
          .filter((l) => l !== ''),
      ),
    ].sort();
    if (this.#ips === undefined || ips.join('\n') !== this.#ips.join('\n')) {
      this.#ips = ips;
      this.version++;
      console.log(`blacklist v${this.version} at ${batchTime}: ${ips.length ? ips.join(', ') : '(empty)'}`);
    }
    return ips;
  }
}

export default definePipeline({
  pipelineId: 'blacklist-filter',
  batchInterval,
  build(ctx) {
    const blacklist = new Blacklist(blacklistFile);
    const lines = createDirectStream(ctx, {
      name: 'access-log',
      topics: [topic],
      startingOffsets,
      createTopics: { partitions },
    }).map((r) => r.value ?? '', { name: 'lines' });

    // Per batch: [ip, line] left-outer-joined with [ip, true] for each blacklisted IP; a line is kept
    // when its IP found no match. `total` and `version` are what the header prints.
    let total = 0;
    let version = 0;
    const kept = lines.transform(
      async (batch, { time }) => {
        const banned = (await blacklist.load(time)).map((ip): [string, boolean] => [ip, true]);
        total = batch.size;
        version = blacklist.version;
        return batch
          .keyBy(ipOf)
          .leftOuterJoin(banned)
          .filter(([, [, isBanned]]) => isBanned === undefined)
          .map(([, [line]]) => line);
      },
      { name: 'drop-blacklisted' },
    );

    kept.foreachBatch(
      (batch, { time }) => {
        const rule = '-------------------------------------------';
        const out = [
          rule,
          `Time: ${time} ms — kept ${batch.size} of ${total} lines (blacklist v${version})`,
          rule,
        ];
        out.push(...batch.collect());
        console.log(`${out.join('\n')}\n`);
      },
      { name: 'print-kept' },
    );
  },
});
