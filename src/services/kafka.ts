/**
 * A local single-node Apache Kafka broker (KRaft, broker + controller in one JVM) run from the jars
 * that `scripts/setup.sh` copies from Maven Central into `.sluice/kafka/lib`.
 *
 * - `KAFKA_BOOTSTRAP=host:port[,host:port]` — use that cluster; Sluice only checks that it answers
 *   (plaintext ApiVersions request) and never starts or stops it.
 * - Otherwise a broker already answering on 127.0.0.1:9092 is reused (whoever started it), else one
 *   is started DETACHED (it outlives the process that started it, so every test file, the demo and
 *   the bench share it) with its data, logs and pid file under `<repo>/.sluice/kafka/`.
 *   `node --import tsx scripts/services.ts down kafka` stops it.
 * - A broker Sluice started from the data dir whose configuration (its server.properties, written
 *   when it started) differs from what {@link brokerProperties} and `properties` make now is
 *   restarted once with the new one (keeping its data): a broker never rereads its configuration,
 *   so a checkout whose broker settings changed would otherwise test against the old ones. A broker
 *   someone else started, or KAFKA_BOOTSTRAP, is never touched.
 *
 * Verified on the 2-core dev machine (Kafka 4.3.1, OpenJDK 17):
 * - `StorageTool format` takes ~0.9 s (a JVM start); skipped when the data dir is already formatted
 *   (the cluster id is kept in `data/meta.properties` and `cluster-id`, so restarts reuse the log).
 * - From spawn to the log line `Kafka Server started (kafka.server.KafkaRaftServer)`: ~1.9 s on an
 *   idle machine; ensureKafka() end to end (incl. format) 2.6-3.6 s while other JVMs/tests run.
 *   ApiVersions answers at once after that line. SIGTERM (controlled) shutdown: 0.3-2 s.
 * - The PLAINTEXT listener binds at the very end of start-up (SocketServer.enableRequestProcessing),
 *   so a port that accepts connections but does not answer Kafka requests is not a starting broker.
 * - Fatal start-up errors (port in use: "Socket server failed to bind ... Address already in use";
 *   an advertised port of 70000: "Cannot serialize invalid port number") log
 *   `ERROR Exiting Kafka due to fatal exception during startup. (kafka.Kafka$)` and exit 1 within ~2 s.
 *   Invalid property values (e.g. log.segment.bytes=10) already fail in `StorageTool format`.
 * - With a log4j2 File appender `append="false"` the log is truncated when log4j re-initialises in the
 *   shutdown hook, losing the fatal error: the appender appends and the launcher rotates the file.
 *   `shutdownHook="disable"` silences log4j's "Unable to register Log4j shutdown hook" on exit.
 * - Retention is checked every second (log.retention.check.interval.ms=1000): a record produced with
 *   a CreateTime older than retention.ms (7 days by default) is deleted within about a second.
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BrokerUnreachableError, ServiceStartError } from '../core/errors.js';
import {
  FileFollower,
  commandLine,
  exchange,
  lastLines,
  exitStatus,
  livePid,
  runCommand,
  safeRead,
  safeUnlink,
  sleep,
  sluicePath,
  tailFile,
  terminate,
  waitForExit,
  withLockFile,
  stopByPidFile,
  stringifyProperties,
  type ServiceStatus,
  type StopResult,
} from './util.js';

export interface KafkaOptions {
  /** Broker (PLAINTEXT) port on 127.0.0.1. Default 9092. Giving a port ignores KAFKA_BOOTSTRAP. */
  port?: number;
  /** Controller port on 127.0.0.1. Default `port + 1`. */
  controllerPort?: number;
  /** Holds `data/`, `logs/`, `server.properties`, `log4j2.xml`, `kafka.pid`. Default `<repo>/.sluice/kafka`. */
  dataDir?: string;
  /** Directory of the Kafka jars. Default env SLUICE_KAFKA_LIB or `<repo>/.sluice/kafka/lib`. */
  libDir?: string;
  /** JVM heap (-Xms and -Xmx). Default '512m'. */
  heap?: string;
  /** Broker properties added to or replacing the defaults (see {@link brokerProperties}). */
  properties?: Record<string, string | number | boolean>;
  /** How long to wait for the broker to be ready. Default 90 s. */
  readyTimeoutMs?: number;
  /** With KAFKA_BOOTSTRAP: how long to keep trying before BrokerUnreachableError. Default 10 s. */
  externalWaitMs?: number;
}

export interface KafkaHandle {
  /** `host:port[,host:port]` for `bootstrap.servers`. */
  bootstrapServers: string;
  /** True when a broker was already answering (or KAFKA_BOOTSTRAP was given); false when this call started it. */
  reused: boolean;
  /** pid of the broker when Sluice started it from this data dir. */
  pid?: number;
  /** The broker's log file when Sluice manages it. */
  logFile?: string;
  /**
   * True when this call stopped the broker Sluice had started from this data dir because its
   * configuration on disk was not the one asked for now, and started it again.
   */
  restarted?: boolean;
}

const DEFAULT_PORT = 9092;
const HOST = '127.0.0.1';
const PROBE_TIMEOUT_MS = 3_000;
const EXTERNAL_WAIT_MS = 10_000;
const MARKER = 'kafka.Kafka';
const READY_LINE = 'Kafka Server started';
const FATAL_LINE = 'Exiting Kafka due to fatal exception';

interface Layout {
  port: number;
  controllerPort: number;
  dir: string;
  dataDir: string;
  logDir: string;
  logFile: string;
  outFile: string;
  propsFile: string;
  log4jFile: string;
  pidFile: string;
  clusterIdFile: string;
  lockFile: string;
  libDir: string;
}

function layout(opts: KafkaOptions): Layout {
  const port = opts.port ?? DEFAULT_PORT;
  const dir = path.resolve(opts.dataDir ?? sluicePath('kafka'));
  const logDir = path.join(dir, 'logs');
  return {
    port,
    controllerPort: opts.controllerPort ?? port + 1,
    dir,
    dataDir: path.join(dir, 'data'),
    logDir,
    logFile: path.join(logDir, 'server.log'),
    outFile: path.join(logDir, 'kafka.out'),
    propsFile: path.join(dir, 'server.properties'),
    log4jFile: path.join(dir, 'log4j2.xml'),
    pidFile: path.join(dir, 'kafka.pid'),
    clusterIdFile: path.join(dir, 'cluster-id'),
    lockFile: path.join(dir, 'start.lock'),
    libDir: path.resolve(opts.libDir ?? process.env.SLUICE_KAFKA_LIB ?? sluicePath('kafka', 'lib')),
  };
}

/** The broker properties Sluice uses for a local test/dev broker (before `opts.properties`). */
export function brokerProperties(
  l: Pick<Layout, 'port' | 'controllerPort' | 'dataDir'>,
): Record<string, string> {
  return {
    'process.roles': 'broker,controller',
    'node.id': '1',
    'controller.quorum.voters': `1@${HOST}:${l.controllerPort}`,
    listeners: `PLAINTEXT://${HOST}:${l.port},CONTROLLER://${HOST}:${l.controllerPort}`,
    'advertised.listeners': `PLAINTEXT://${HOST}:${l.port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    'log.dirs': l.dataDir,
    'num.partitions': '1',
    'default.replication.factor': '1',
    'min.insync.replicas': '1',
    'offsets.topic.replication.factor': '1',
    'offsets.topic.num.partitions': '1',
    'transaction.state.log.replication.factor': '1',
    'transaction.state.log.min.isr': '1',
    'transaction.state.log.num.partitions': '1',
    'share.coordinator.state.topic.replication.factor': '1',
    'share.coordinator.state.topic.min.isr': '1',
    'group.initial.rebalance.delay.ms': '0',
    'log.retention.check.interval.ms': '1000',
    'log.initial.task.delay.ms': '0',
    'log.cleaner.dedupe.buffer.size': '2097152',
    // Consumer groups of the new protocol (KIP-848, `group.protocol=consumer`, what group
    // membership uses): a member that dies without leaving gives its partitions away after ~6 s
    // instead of the default 45 s session timeout, which keeps the scale-out tests short. These are
    // static broker configs; members cannot ask for other values.
    'group.consumer.session.timeout.ms': '6000',
    'group.consumer.min.session.timeout.ms': '1000',
    'group.consumer.heartbeat.interval.ms': '500',
    'group.consumer.min.heartbeat.interval.ms': '100',
  };
}

/** The broker's log4j2 configuration (a rolling file); also used by ./secure-kafka.ts. */
export function log4jConfig(logFile: string): string {
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  // append="true": see the note at the top of this file. Rolled at 20 MiB, 3 files kept.
  return `<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn" shutdownHook="disable">
  <Appenders>
    <RollingFile name="file" fileName="${esc(logFile)}" filePattern="${esc(logFile)}.%i" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
    <Root level="info"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
`;
}

/**
 * Sends a Kafka ApiVersions v0 request (the first request every client sends; every broker version
 * answers it, with an error code if it wants a newer version) and checks the correlation id.
 */
export async function probeKafka(
  host: string,
  port: number,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<{ ok: true } | { ok: false; stage: 'connect' | 'answer'; error: string }> {
  const clientId = Buffer.from('sluice-probe');
  const correlationId = 0x51c3;
  const req = Buffer.alloc(4 + 2 + 2 + 4 + 2 + clientId.length);
  req.writeInt32BE(req.length - 4, 0);
  req.writeInt16BE(18, 4); // api key: ApiVersions
  req.writeInt16BE(0, 6); // api version 0
  req.writeInt32BE(correlationId, 8);
  req.writeInt16BE(clientId.length, 12);
  clientId.copy(req, 14);
  const r = await exchange(
    host,
    port,
    req,
    (d) => d.length >= 4 && d.length >= 4 + d.readInt32BE(0),
    timeoutMs,
  );
  if (!r.ok) return r;
  if (r.data.length < 8 || r.data.readInt32BE(4) !== correlationId) {
    return { ok: false, stage: 'answer', error: 'the answer is not a Kafka ApiVersions response' };
  }
  return { ok: true };
}

function parseBootstrap(servers: string): { host: string; port: number }[] {
  return servers
    .split(',')
    .map((s) => s.trim().replace(/^[a-z_]+:\/\//i, ''))
    .filter(Boolean)
    .map((s) => {
      const i = s.lastIndexOf(':');
      const host = (i > 0 ? s.slice(0, i) : s).replace(/^\[|\]$/g, '');
      return { host, port: i > 0 ? Number(s.slice(i + 1)) : DEFAULT_PORT };
    });
}

/** True when any of the bootstrap servers answers a Kafka request (bounded). */
async function clusterAnswers(servers: string, timeoutMs: number): Promise<{ ok: boolean; error: string }> {
  let error = 'no bootstrap servers given';
  for (const { host, port } of parseBootstrap(servers)) {
    const r = await probeKafka(host, port, timeoutMs);
    if (r.ok) return { ok: true, error: '' };
    error = `${host}:${port}: ${r.error}`;
  }
  return { ok: false, error };
}

/**
 * Makes sure a Kafka broker answers and returns its bootstrap servers. See the module comment for
 * the order (KAFKA_BOOTSTRAP, a broker on the port, start one) and for when the broker of this data
 * dir is restarted (its configuration is not the one asked for). Concurrent callers of the same data
 * dir (e.g. parallel test files) are serialised by a lock file: only one starts the broker.
 *
 * @throws BrokerUnreachableError when KAFKA_BOOTSTRAP is set and does not answer within `externalWaitMs` (10 s).
 * @throws ServiceStartError('Kafka', reason, logTail) when the broker cannot be started.
 */
export async function ensureKafka(opts: KafkaOptions = {}): Promise<KafkaHandle> {
  const external = process.env.KAFKA_BOOTSTRAP?.trim();
  if (external && opts.port === undefined) {
    const deadline = Date.now() + (opts.externalWaitMs ?? EXTERNAL_WAIT_MS);
    let attempts = 0;
    for (;;) {
      attempts++;
      const r = await clusterAnswers(external, PROBE_TIMEOUT_MS);
      if (r.ok) return { bootstrapServers: external, reused: true };
      if (Date.now() >= deadline) throw new BrokerUnreachableError(external, attempts, r.error);
      await sleep(500);
    }
  }

  const l = layout(opts);
  const bootstrapServers = `${HOST}:${l.port}`;
  const wanted = { ...brokerProperties(l), ...stringifyProperties(opts.properties ?? {}) };
  const reuse = async (): Promise<KafkaHandle | undefined> => {
    const r = await probeKafka(HOST, l.port);
    // Ours but configured otherwise (e.g. started before brokerProperties changed): a running broker
    // never rereads its configuration, so it is restarted (below, under the lock).
    if (r.ok && staleConfig(l, wanted) !== undefined) return undefined;
    if (r.ok) return handle(l, true);
    // A port that accepts but does not answer, and is not our own server still starting, is someone else's.
    if (r.stage === 'answer' && livePid(l.pidFile, MARKER) === undefined) {
      throw new ServiceStartError(
        'Kafka',
        `${bootstrapServers} accepts connections but does not answer Kafka requests (${r.error}); another program holds the port — stop it or choose another port`,
        '',
      );
    }
    return undefined;
  };

  const found = await reuse();
  if (found) return found;

  mkdirSync(l.dir, { recursive: true });
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  let lockError: unknown;
  try {
    return await withLockFile(l.lockFile, readyTimeoutMs + 60_000, async () => {
      // Someone may have started it while we waited for the lock.
      const again = await reuse();
      if (again) return again;
      const stale = staleConfig(l, wanted);
      if (stale !== undefined) {
        // SIGTERM: a controlled shutdown, so the data dir is reused as it is (topics, offsets).
        await terminate(stale, 30_000);
        safeUnlink(l.pidFile);
        return { ...(await start(l, opts, readyTimeoutMs)), restarted: true };
      }
      const running = livePid(l.pidFile, MARKER);
      if (running !== undefined) {
        // Our broker from an earlier call is still starting (or hung): wait for it, don't start another.
        await waitUntilReady(l, running, null, readyTimeoutMs);
        return handle(l, true);
      }
      return await start(l, opts, readyTimeoutMs);
    });
  } catch (e) {
    lockError = e;
  }
  if (lockError instanceof ServiceStartError) throw lockError;
  throw new ServiceStartError('Kafka', (lockError as Error).message, tailFile(l.logFile));
}

/**
 * The pid of the broker Sluice started from this data dir when the configuration it runs with (its
 * server.properties, written at its start) is not `wanted`; undefined otherwise, and for any broker
 * this data dir did not start (another checkout's, a system one: never touched).
 */
function staleConfig(l: Layout, wanted: Record<string, string>): number | undefined {
  const pid = livePid(l.pidFile, MARKER);
  // The pid file may outlive its broker and the pid be reused: only a JVM running this file counts.
  if (pid === undefined || !commandLine(pid).includes(l.propsFile)) return undefined;
  const running = parseProperties(safeRead(l.propsFile));
  const same =
    Object.keys(running).length === Object.keys(wanted).length &&
    Object.entries(wanted).every(([k, v]) => running[k] === v);
  return same ? undefined : pid;
}

/** A `.properties` file as written by {@link start}: `key=value` lines, `#` comments. */
function parseProperties(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

function handle(l: Layout, reused: boolean): KafkaHandle {
  const pid = livePid(l.pidFile, MARKER);
  return {
    bootstrapServers: `${HOST}:${l.port}`,
    reused,
    ...(pid !== undefined ? { pid, logFile: l.logFile } : {}),
  };
}

async function start(l: Layout, opts: KafkaOptions, readyTimeoutMs: number): Promise<KafkaHandle> {
  if (!existsSync(l.libDir) || !readdirSync(l.libDir).some((f) => /^kafka_2\.13-.*\.jar$/.test(f))) {
    throw new ServiceStartError(
      'Kafka',
      `no Kafka jars in ${l.libDir}; run \`bash scripts/setup.sh\` (it copies them from Maven Central)`,
      '',
    );
  }
  mkdirSync(l.dataDir, { recursive: true });
  mkdirSync(l.logDir, { recursive: true });

  const props = { ...brokerProperties(l), ...stringifyProperties(opts.properties ?? {}) };
  writeFileSync(
    l.propsFile,
    `# Written by src/services/kafka.ts on every start; edit KafkaOptions.properties instead.\n` +
      Object.entries(props)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n') +
      '\n',
  );
  writeFileSync(l.log4jFile, log4jConfig(l.logFile));
  const classpath = `${l.libDir}/*`;
  const log4jArg = `-Dlog4j2.configurationFile=${l.log4jFile}`;

  // Format once; keep the cluster id so the data dir stays valid across restarts.
  const metaFile = path.join(l.dataDir, 'meta.properties');
  if (!existsSync(metaFile)) {
    await formatKafkaStorage({ service: 'Kafka', ...l, log4jArg, classpath, timeoutMs: 60_000 });
  }

  const { pid, exit } = await spawnKafkaJvm({
    service: 'Kafka',
    dir: l.dir,
    logFile: l.logFile,
    outFile: l.outFile,
    pidFile: l.pidFile,
    heap: opts.heap ?? '512m',
    log4jArg,
    classpath,
    propsFile: l.propsFile,
  });
  await waitUntilReady(l, pid, exit, readyTimeoutMs);
  return { bootstrapServers: `${HOST}:${l.port}`, reused: false, pid, logFile: l.logFile };
}

/**
 * A random cluster id (16 bytes, base64url) that does not start with '-': the storage tool would
 * read such an id as an option and fail ("argument --cluster-id/-t: expected one argument"), one
 * start in 64. Kafka's own Uuid.randomUuid skips those ids for the same reason.
 */
function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/**
 * Formats a broker's storage (Kafka's StorageTool) with the cluster id kept in `clusterIdFile` (made
 * on first use, so the data dir stays valid across restarts). `extraArgs` go to the tool (e.g.
 * `--add-scram`); `scrub` cleans its output before an error shows it.
 */
export async function formatKafkaStorage(o: {
  service: string;
  dir: string;
  dataDir: string;
  clusterIdFile: string;
  propsFile: string;
  log4jArg: string;
  classpath: string;
  timeoutMs: number;
  extraArgs?: readonly string[];
  scrub?: (output: string) => string;
}): Promise<void> {
  const clusterId = safeRead(o.clusterIdFile).trim() || newClusterId();
  writeFileSync(o.clusterIdFile, clusterId + '\n');
  const r = await runCommand(
    'java',
    [
      '-Xmx256m',
      o.log4jArg,
      '-cp',
      o.classpath,
      'kafka.tools.StorageTool',
      'format',
      '--ignore-formatted',
      '-t',
      clusterId,
      '-c',
      o.propsFile,
      ...(o.extraArgs ?? []),
    ],
    { timeoutMs: o.timeoutMs, cwd: o.dir },
  );
  if (r.code !== 0) {
    const output = o.scrub ? o.scrub(r.output) : r.output;
    const firstError = output
      .split('\n')
      .find((s) => /Exception|Error/.test(s))
      ?.trim();
    throw new ServiceStartError(
      o.service,
      r.error ??
        `formatting the storage in ${o.dataDir} failed (exit ${r.code})${firstError ? `: ${firstError}` : ''}`,
      lastLines(output, 30),
    );
  }
}

/**
 * Starts a broker JVM detached (it outlives this process) with its output appended to `outFile`,
 * after keeping the previous run's logs as *.prev; writes its pid file. `exit` is filled in if it
 * exits while this process watches.
 */
export async function spawnKafkaJvm(o: {
  service: string;
  dir: string;
  logFile: string;
  outFile: string;
  pidFile: string;
  heap: string;
  log4jArg: string;
  classpath: string;
  propsFile: string;
}): Promise<{ pid: number; exit: { value: string | null } }> {
  // This run's log starts empty; the previous run's is kept as *.prev.
  for (const f of [o.logFile, o.outFile]) if (existsSync(f)) renameSync(f, `${f}.prev`);
  const out = openSync(o.outFile, 'a');
  const child = spawn(
    'java',
    [
      `-Xms${o.heap}`,
      `-Xmx${o.heap}`,
      '-XX:+ExitOnOutOfMemoryError',
      '-Djava.awt.headless=true',
      o.log4jArg,
      '-cp',
      o.classpath,
      MARKER,
      o.propsFile,
    ],
    { cwd: o.dir, detached: true, stdio: ['ignore', out, out] },
  );
  closeSync(out);
  const exit: { value: string | null } = { value: null };
  const spawnError = await new Promise<string | null>((resolve) => {
    child.once('error', (e: NodeJS.ErrnoException) =>
      resolve(
        e.code === 'ENOENT' ? 'java is not installed (apt-get install openjdk-17-jre-headless)' : e.message,
      ),
    );
    child.once('spawn', () => resolve(null));
  });
  if (spawnError !== null || child.pid === undefined) {
    throw new ServiceStartError(o.service, spawnError ?? 'the JVM could not be spawned', '');
  }
  child.once('exit', (code, signal) => (exit.value = signal ? `signal ${signal}` : `code ${code}`));
  child.unref();
  writeFileSync(o.pidFile, `${child.pid}\n`);
  return { pid: child.pid, exit };
}

/** Follows the broker log until it is ready; on a fatal error, exit or timeout stops it and throws. */
function waitUntilReady(
  l: Layout,
  pid: number,
  exit: { value: string | null } | null,
  readyTimeoutMs: number,
): Promise<void> {
  return waitForBroker({
    service: 'Kafka',
    ...l,
    pid,
    exit,
    readyTimeoutMs,
    probe: async () =>
      (await probeKafka(HOST, l.port, 2_000)).ok ? undefined : `${HOST}:${l.port} does not answer`,
  });
}

/**
 * Follows a broker's log until it logged that it started and `probe` answers undefined (ready);
 * `probe` otherwise says why not. On a fatal error, an exit or the timeout it stops the broker and
 * throws ServiceStartError with the log's tail.
 */
export async function waitForBroker(o: {
  service: string;
  logFile: string;
  outFile: string;
  pidFile: string;
  pid: number;
  exit: { value: string | null } | null;
  readyTimeoutMs: number;
  probe: () => Promise<string | undefined>;
}): Promise<void> {
  const follower = new FileFollower(o.logFile);
  const deadline = Date.now() + o.readyTimeoutMs;
  let log = '';
  let sawReady = false;
  let notReady = '';
  for (;;) {
    log += follower.readNew();
    if (!sawReady && log.includes(READY_LINE)) sawReady = true;
    if (log.includes(FATAL_LINE)) {
      if (!(await waitForExit(o.pid, 15_000))) await terminate(o.pid, 10_000);
      await sleep(100); // let the last lines reach the file
      log += follower.readNew();
      safeUnlink(o.pidFile);
      throw new ServiceStartError(
        o.service,
        `the broker stopped during start-up: ${fatalReason(log)}`,
        kafkaLogTail(o, log),
      );
    }
    const exited = await exitStatus(o.exit, o.pidFile, MARKER);
    if (exited !== null) {
      log += follower.readNew();
      safeUnlink(o.pidFile);
      throw new ServiceStartError(
        o.service,
        `the broker process exited (${exited}) before it was ready`,
        kafkaLogTail(o, log),
      );
    }
    if (sawReady) {
      const why = await o.probe();
      if (why === undefined) return;
      notReady = why;
    }
    if (Date.now() >= deadline) {
      await terminate(o.pid, 15_000);
      safeUnlink(o.pidFile);
      log += follower.readNew();
      throw new ServiceStartError(
        o.service,
        `the broker was not ready after ${Math.round(o.readyTimeoutMs / 1000)} s${sawReady ? ` (it logged '${READY_LINE}' but ${notReady})` : ''}; it was stopped`,
        kafkaLogTail(o, log),
      );
    }
    await sleep(200);
  }
}

/** The deepest 'Caused by' (or the exception itself) after the fatal line. */
export function fatalReason(log: string): string {
  const lines = log.split('\n');
  const i = lines.findIndex((s) => s.includes(FATAL_LINE));
  const trace: string[] = [];
  for (const line of lines.slice(i + 1)) {
    if (/^\[\d{4}-/.test(line)) break;
    trace.push(line);
  }
  const causes = trace.filter((s) => s.startsWith('Caused by: '));
  const last = causes.length > 0 ? causes[causes.length - 1]!.slice('Caused by: '.length) : trace[0];
  return (last ?? 'see the log').trim();
}

/**
 * ~30 lines: after a fatal error, the fatal line, the exception and its 'Caused by' lines, then the
 * last lines of the log; otherwise the last 30 lines. JVM output (kafka.out) is added when it has any.
 */
export function kafkaLogTail(l: Pick<Layout, 'outFile'>, log: string): string {
  const lines = log.replace(/\s+$/, '').split('\n');
  let tail: string[];
  const i = lines.findIndex((s) => s.includes(FATAL_LINE));
  if (i >= 0) {
    const summary = [lines[i]!, lines[i + 1] ?? ''];
    for (const line of lines.slice(i + 2)) {
      if (/^\[\d{4}-/.test(line)) break;
      if (line.startsWith('Caused by: ')) summary.push(line);
    }
    const rest = lines.slice(Math.max(i + 2, lines.length - Math.max(5, 30 - summary.length)));
    tail = [...summary, '...', ...rest.filter((s) => !summary.includes(s))];
  } else {
    tail = lines.slice(Math.max(0, lines.length - 30));
  }
  const out = tailFile(l.outFile, 10);
  return [tail.join('\n'), out ? `--- JVM output (${l.outFile}) ---\n${out}` : ''].filter(Boolean).join('\n');
}

/**
 * Stops the broker Sluice started from this data dir (SIGTERM = controlled shutdown, SIGKILL after
 * `graceMs`, default 30 s). A broker Sluice did not start (KAFKA_BOOTSTRAP, or no pid file) is left alone.
 */
export async function stopKafka(
  opts: Pick<KafkaOptions, 'dataDir' | 'port'> & { graceMs?: number } = {},
): Promise<StopResult> {
  return stopByPidFile(layout(opts).pidFile, MARKER, opts.graceMs ?? 30_000);
}

/** Whether the broker answers, and the pid when Sluice manages it. */
export async function kafkaStatus(opts: Pick<KafkaOptions, 'dataDir' | 'port'> = {}): Promise<ServiceStatus> {
  const external = process.env.KAFKA_BOOTSTRAP?.trim();
  if (external && opts.port === undefined) {
    const r = await clusterAnswers(external, PROBE_TIMEOUT_MS);
    return { service: 'kafka', address: external, answering: r.ok, managedBy: 'env' };
  }
  const l = layout(opts);
  const pid = livePid(l.pidFile, MARKER);
  const answering = (await probeKafka(HOST, l.port)).ok;
  return {
    service: 'kafka',
    address: `${HOST}:${l.port}`,
    answering,
    managedBy: pid !== undefined ? 'sluice' : 'system',
    ...(pid !== undefined ? { pid } : {}),
  };
}
