/**
 * node --import tsx scripts/services.ts up|down|status [--quiet] [kafka|zookeeper|postgres|mariadb|redis|all|kafka-secure ...]
 *
 * `all` (the default) is every service but `kafka-secure`, the secured broker (SASL_SSL, ACLs; see
 * src/services/secure-kafka.ts): only the tests that need it start it, or name it here.
 * One line per service. `up` ensures each answers (starting local ones), `down` stops what Sluice
 * started (Kafka, ZooKeeper; the machine's databases are left running), `status` only checks.
 * `--quiet` prints only the services `up` had to start (and failures). Exit code 1 if any failed.
 */
import path from 'node:path';
import {
  ensureKafka,
  ensureMariaDb,
  ensurePostgres,
  ensureRedis,
  ensureZooKeeper,
  kafkaStatus,
  mariadbStatus,
  postgresStatus,
  redactUrl,
  redisStatus,
  stopKafka,
  stopZooKeeper,
  zookeeperStatus,
  type ServiceStatus,
} from '../src/services/index.js';
import { ensureSecureKafka, secureKafkaStatus, stopSecureKafka } from '../src/services/secure-kafka.js';

const NAMES = ['kafka', 'zookeeper', 'postgres', 'mariadb', 'redis'] as const;
/** Services only handled when named (not part of `all`). */
const EXTRA_NAMES = ['kafka-secure'] as const;
type Name = (typeof NAMES)[number] | (typeof EXTRA_NAMES)[number];

interface Line {
  text: string;
  failed: boolean;
  quietable: boolean;
  /** Print on stdout even when failed (status lines). */
  toStdout?: boolean;
}

const rel = (f: string): string => path.relative(process.cwd(), f) || f;
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

async function up(name: Name): Promise<Line> {
  const t0 = Date.now();
  switch (name) {
    case 'kafka': {
      const k = await ensureKafka();
      return k.reused
        ? {
            text: `up        ${k.bootstrapServers}${k.pid ? ` (pid ${k.pid})` : ''}`,
            failed: false,
            quietable: true,
          }
        : {
            text: `started   ${k.bootstrapServers} (pid ${k.pid}, ready in ${secs(Date.now() - t0)}, log ${rel(k.logFile ?? '')})`,
            failed: false,
            quietable: false,
          };
    }
    case 'kafka-secure': {
      const k = await ensureSecureKafka();
      const where = `${k.bootstrapServers} (SASL_SSL), ${k.mtlsBootstrapServers} (mTLS)`;
      return k.reused
        ? { text: `up        ${where}${k.pid ? ` (pid ${k.pid})` : ''}`, failed: false, quietable: true }
        : {
            text: `started   ${where} (pid ${k.pid}, ready in ${secs(Date.now() - t0)}, log ${rel(k.logFile ?? '')})`,
            failed: false,
            quietable: false,
          };
    }
    case 'zookeeper': {
      const z = await ensureZooKeeper();
      return z.reused
        ? {
            text: `up        ${z.connectString}${z.pid ? ` (pid ${z.pid})` : ''}`,
            failed: false,
            quietable: true,
          }
        : {
            text: `started   ${z.connectString} (pid ${z.pid}, ready in ${secs(Date.now() - t0)}, log ${rel(z.logFile ?? '')})`,
            failed: false,
            quietable: false,
          };
    }
    default: {
      const ensure = { postgres: ensurePostgres, mariadb: ensureMariaDb, redis: ensureRedis }[name];
      const d = await ensure();
      return d.reused
        ? { text: `up        ${redactUrl(d.url)}`, failed: false, quietable: true }
        : {
            text: `started   ${redactUrl(d.url)} (ready in ${secs(Date.now() - t0)})`,
            failed: false,
            quietable: false,
          };
    }
  }
}

async function down(name: Name): Promise<Line> {
  const stop =
    name === 'kafka'
      ? stopKafka
      : name === 'kafka-secure'
        ? stopSecureKafka
        : name === 'zookeeper'
          ? stopZooKeeper
          : undefined;
  if (!stop)
    return {
      text: 'left running (a machine service; Sluice does not stop it)',
      failed: false,
      quietable: true,
    };
  const t0 = Date.now();
  const r = await stop();
  return r.stopped
    ? {
        text: `stopped   pid ${r.pid} (${r.how === 'killed' ? 'SIGKILL after SIGTERM timed out' : 'SIGTERM'}, ${secs(Date.now() - t0)})`,
        failed: false,
        quietable: false,
      }
    : { text: 'not running (nothing Sluice started)', failed: false, quietable: true };
}

async function status(name: Name): Promise<Line> {
  const get: Record<Name, () => Promise<ServiceStatus>> = {
    kafka: kafkaStatus,
    'kafka-secure': secureKafkaStatus,
    zookeeper: zookeeperStatus,
    postgres: postgresStatus,
    mariadb: mariadbStatus,
    redis: redisStatus,
  };
  const s = await get[name]();
  const who =
    s.managedBy === 'sluice'
      ? `started by Sluice, pid ${s.pid}`
      : s.managedBy === 'env'
        ? 'from the environment'
        : 'not started by Sluice';
  return {
    text: `${s.answering ? 'answering' : 'DOWN     '} ${s.address} (${who})`,
    failed: !s.answering,
    quietable: s.answering,
    toStdout: true,
  };
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const quiet = args.includes('--quiet');
  const [command, ...rest] = args.filter((a) => a !== '--quiet');
  const actions = { up, down, status } as const;
  if (command === undefined || !(command in actions)) {
    console.error(
      'usage: node --import tsx scripts/services.ts up|down|status [--quiet] [kafka|zookeeper|postgres|mariadb|redis|all|kafka-secure ...]',
    );
    return 2;
  }
  const known: readonly string[] = [...NAMES, ...EXTRA_NAMES];
  const unknown = rest.filter((n) => n !== 'all' && !known.includes(n));
  if (unknown.length > 0) {
    console.error(`unknown service(s): ${unknown.join(', ')}; known: ${known.join(', ')}, all`);
    return 2;
  }
  const extras = rest.filter((n) => (EXTRA_NAMES as readonly string[]).includes(n)) as Name[];
  const names: Name[] = rest.length === 0 || rest.includes('all') ? [...NAMES, ...extras] : (rest as Name[]);
  const action = actions[command as keyof typeof actions];
  // All at once (a cold start of Kafka and ZooKeeper overlaps); lines are printed in a fixed order.
  const pending = names.map((n) =>
    action(n).catch((e: unknown): Line => ({
      text: `FAILED    ${e instanceof Error ? e.message : String(e)}`,
      failed: true,
      quietable: false,
    })),
  );
  let failed = false;
  for (const [i, p] of pending.entries()) {
    const line = await p;
    failed ||= line.failed;
    if (quiet && line.quietable) continue;
    (line.failed && !line.toStdout ? console.error : console.log)(`${names[i]!.padEnd(10)} ${line.text}`);
  }
  return failed ? 1 : 0;
}

process.exitCode = await main();
