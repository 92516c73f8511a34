import { KafkaAdmin } from '../kafka/admin.js';
import { defaultCluster } from '../kafka/cluster.js';
import { ensureKafka, kafkaStatus, stopKafka } from '../services/kafka.js';

/** What a `sluice kafka ...` command prints and its exit code. */
export interface CommandResult {
  readonly exitCode: number;
  /** Lines for stdout. */
  readonly lines: readonly string[];
}

/**
 * `sluice kafka start`: makes sure a broker answers (KAFKA_BOOTSTRAP's cluster, a broker already on
 * 127.0.0.1:9092, or a local one started detached) and prints its bootstrap servers.
 */
export async function kafkaStartCommand(): Promise<CommandResult> {
  const handle = await ensureKafka();
  const how = process.env.KAFKA_BOOTSTRAP?.trim()
    ? 'the cluster KAFKA_BOOTSTRAP points at answers'
    : handle.reused
      ? 'already running'
      : `started${handle.pid !== undefined ? `, pid ${handle.pid}` : ''}${handle.logFile ? `, log ${handle.logFile}` : ''}`;
  return {
    exitCode: 0,
    lines: [
      `Kafka is running at ${handle.bootstrapServers} (${how})`,
      `bootstrap servers: ${handle.bootstrapServers}`,
    ],
  };
}

/** `sluice kafka stop`: stops the broker Sluice started; leaves any other alone (and says so). */
export async function kafkaStopCommand(): Promise<CommandResult> {
  const external = process.env.KAFKA_BOOTSTRAP?.trim();
  if (external) {
    return {
      exitCode: 0,
      lines: [`KAFKA_BOOTSTRAP is set (${external}): Sluice does not stop a cluster it did not start`],
    };
  }
  const r = await stopKafka();
  if (!r.stopped)
    return { exitCode: 0, lines: ['No Kafka broker started by Sluice is running: nothing to stop'] };
  return {
    exitCode: 0,
    lines: [
      `Kafka stopped (pid ${r.pid}, ${r.how === 'killed' ? 'killed after the grace period' : 'shut down cleanly'})`,
    ],
  };
}

/**
 * `sluice kafka status`: exit code 0 when the broker answers, 3 when it does not (as `systemctl status`).
 * With `--bootstrap` or the process's cluster settings (env SLUICE_KAFKA_CONFIG, `--kafka-config`),
 * it asks that cluster as every Sluice client would, with its security settings: a refused login or
 * TLS handshake is an error (SLUICE_KAFKA_AUTH_FAILED), not "not running".
 */
export async function kafkaStatusCommand(
  options: { json?: boolean; bootstrap?: string } = {},
): Promise<CommandResult> {
  if (options.bootstrap !== undefined || process.env.SLUICE_KAFKA_CONFIG) {
    return clusterStatus(options.bootstrap, options.json ?? false);
  }
  const s = await kafkaStatus();
  const state = s.answering ? 'running' : 'not running';
  const exitCode = s.answering ? 0 : 3;
  if (options.json) return { exitCode, lines: [JSON.stringify({ ...s, state })] };
  const who =
    s.managedBy === 'env'
      ? 'KAFKA_BOOTSTRAP'
      : s.managedBy === 'sluice'
        ? `started by Sluice, pid ${s.pid}`
        : s.answering
          ? 'not started by Sluice'
          : 'start one with `sluice kafka start`';
  return { exitCode, lines: [`kafka: ${state} at ${s.address} (${who})`] };
}

/** The status of a cluster as Sluice's clients reach it (security included): one authenticated round trip. */
async function clusterStatus(bootstrap: string | undefined, json: boolean): Promise<CommandResult> {
  const cluster = defaultCluster(bootstrap);
  const protocol = String(cluster.config['security.protocol'] ?? 'plaintext').toUpperCase();
  const admin = KafkaAdmin.create(cluster, { policy: { attempts: 2, timeoutMs: 5000 } });
  let topics: string[] | undefined;
  let unreachable: string | undefined;
  try {
    topics = await admin.listTopics();
  } catch (e) {
    // A refused login or a missing permission is an error of its own; only no answer is "not running".
    if ((e as { code?: unknown }).code !== 'SLUICE_BROKER_UNREACHABLE') throw e;
    unreachable = (e as Error).message;
  } finally {
    admin.close();
  }
  const running = topics !== undefined;
  const exitCode = running ? 0 : 3;
  if (json) {
    return {
      exitCode,
      lines: [
        JSON.stringify({
          state: running ? 'running' : 'not running',
          answering: running,
          address: cluster.bootstrapServers,
          protocol,
          ...(topics ? { visibleTopics: topics.length } : { error: unreachable }),
        }),
      ],
    };
  }
  return {
    exitCode,
    lines: [
      running
        ? `kafka: running at ${cluster.bootstrapServers} (${protocol}; ${topics!.length} topic(s) visible to this client)`
        : `kafka: not running at ${cluster.bootstrapServers} (${protocol}): no broker answered`,
    ],
  };
}
