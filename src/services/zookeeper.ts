/**
 * A local standalone ZooKeeper (for the ZooKeeper offset store), run from Debian's `zookeeper`
 * package (3.8.0) with the slf4j-simple binding from `libslf4j-java`.
 *
 * - `ZOOKEEPER_CONNECT=host:port[,host:port][/chroot]` — use that ensemble; Sluice only checks that
 *   it answers (see {@link probeZooKeeper}) and never starts or stops it.
 * - Otherwise a ZooKeeper answering on 127.0.0.1:2181 is reused, else one is started DETACHED with its
 *   data, log (`zookeeper.log`) and pid file under `<repo>/.sluice/zookeeper/`.
 *
 * Verified on the dev machine: the class path `/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar`
 * is enough, because Debian's zookeeper.jar lists its dependencies (netty, jute, slf4j-api, metrics,
 * snappy, jline, jetty, jackson, commons-cli/io) in its manifest Class-Path; slf4j-simple is only
 * needed for logging (it writes to stderr). Serving ~0.7-1 s after spawn. A port in use logs
 * "Unexpected exception, exiting abnormally ... BindException" and exits 1.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ServiceStartError } from '../core/errors.js';
import {
  exchange,
  exitStatus,
  livePid,
  safeUnlink,
  sleep,
  sluicePath,
  tailFile,
  terminate,
  withLockFile,
  stopByPidFile,
  type ServiceStatus,
  type StopResult,
} from './util.js';

export interface ZooKeeperOptions {
  /** Client port on 127.0.0.1. Default 2181. Giving a port ignores ZOOKEEPER_CONNECT. */
  port?: number;
  /** Holds `data/`, `zoo.cfg`, `zookeeper.log`, `zookeeper.pid`. Default `<repo>/.sluice/zookeeper`. */
  dataDir?: string;
  /** JVM heap (-Xmx). Default '128m'. */
  heap?: string;
  /** How long to wait until it serves requests. Default 30 s. */
  readyTimeoutMs?: number;
  /** With ZOOKEEPER_CONNECT: how long to keep trying before ServiceStartError. Default 10 s. */
  externalWaitMs?: number;
}

export interface ZooKeeperHandle {
  /** Connect string for a ZooKeeper client, `host:port[,...][/chroot]`. */
  connectString: string;
  /** True when it was already answering (or ZOOKEEPER_CONNECT was given); false when this call started it. */
  reused: boolean;
  pid?: number;
  logFile?: string;
}

const HOST = '127.0.0.1';
const DEFAULT_PORT = 2181;
const MARKER = 'org.apache.zookeeper.server.ZooKeeperServerMain';
export const ZOOKEEPER_CLASSPATH = ['/usr/share/java/zookeeper.jar', '/usr/share/java/slf4j-simple.jar'];

interface Layout {
  port: number;
  dir: string;
  dataDir: string;
  cfgFile: string;
  logFile: string;
  pidFile: string;
  lockFile: string;
}

function layout(opts: ZooKeeperOptions): Layout {
  const dir = path.resolve(opts.dataDir ?? sluicePath('zookeeper'));
  return {
    port: opts.port ?? DEFAULT_PORT,
    dir,
    dataDir: path.join(dir, 'data'),
    cfgFile: path.join(dir, 'zoo.cfg'),
    logFile: path.join(dir, 'zookeeper.log'),
    pidFile: path.join(dir, 'zookeeper.pid'),
    lockFile: path.join(dir, 'start.lock'),
  };
}

export type ZooKeeperProbe =
  { ok: true } | { ok: false; stage: 'connect' | 'answer' | 'starting'; error: string };

/**
 * Ready = serving requests. `ruok` is not enough: ZooKeeper 3.8 answers `imok` as soon as the process
 * listens, while `srvr` still says "This ZooKeeper instance is not currently serving requests"
 * (seen here, ~0.1-0.5 s). So ask `srvr` (a `Mode:` line = serving); a server that does not allow
 * `srvr` (4lw whitelist) is asked `ruok` instead, and one that allows neither still proves to be a
 * ZooKeeper by saying so.
 */
export async function probeZooKeeper(host: string, port: number, timeoutMs = 3_000): Promise<ZooKeeperProbe> {
  const srvr = await fourLetterWord(host, port, 'srvr', timeoutMs);
  if (!srvr.ok) return srvr;
  if (srvr.text.includes('Mode:')) return { ok: true };
  if (srvr.text.includes('not currently serving requests')) {
    return { ok: false, stage: 'starting', error: 'it is not serving requests yet' };
  }
  if (srvr.text.includes('not in the whitelist')) {
    const ruok = await fourLetterWord(host, port, 'ruok', timeoutMs);
    if (!ruok.ok) return ruok;
    if (ruok.text.includes('imok') || ruok.text.includes('not in the whitelist')) return { ok: true };
    return {
      ok: false,
      stage: 'answer',
      error: `unexpected answer to ruok: ${JSON.stringify(ruok.text.slice(0, 80))}`,
    };
  }
  return {
    ok: false,
    stage: 'answer',
    error: `unexpected answer to srvr: ${JSON.stringify(srvr.text.slice(0, 80))}`,
  };
}

async function fourLetterWord(
  host: string,
  port: number,
  word: string,
  timeoutMs: number,
): Promise<{ ok: true; text: string } | { ok: false; stage: 'connect' | 'answer'; error: string }> {
  // The server closes the connection after its answer.
  const r = await exchange(host, port, word, () => false, timeoutMs);
  return r.ok ? { ok: true, text: r.data.toString('latin1') } : r;
}

function firstServer(connect: string): { host: string; port: number } {
  const first = connect.split('/')[0]!.split(',')[0]!.trim();
  const i = first.lastIndexOf(':');
  return i > 0
    ? { host: first.slice(0, i), port: Number(first.slice(i + 1)) }
    : { host: first, port: DEFAULT_PORT };
}

async function externalAnswers(connect: string): Promise<{ ok: boolean; error: string }> {
  let error = '';
  for (const server of connect.split('/')[0]!.split(',')) {
    const { host, port } = firstServer(server);
    const r = await probeZooKeeper(host, port);
    if (r.ok) return { ok: true, error: '' };
    error = `${host}:${port}: ${r.error}`;
  }
  return { ok: false, error };
}

/**
 * Makes sure a ZooKeeper serves requests (see {@link probeZooKeeper}) and returns its connect string.
 * @throws ServiceStartError('ZooKeeper', reason, logTail) when it cannot be started, or when
 *   ZOOKEEPER_CONNECT is set and does not answer within 10 s.
 */
export async function ensureZooKeeper(opts: ZooKeeperOptions = {}): Promise<ZooKeeperHandle> {
  const external = process.env.ZOOKEEPER_CONNECT?.trim();
  if (external && opts.port === undefined) {
    const deadline = Date.now() + (opts.externalWaitMs ?? 10_000);
    for (;;) {
      const r = await externalAnswers(external);
      if (r.ok) return { connectString: external, reused: true };
      if (Date.now() >= deadline) {
        throw new ServiceStartError(
          'ZooKeeper',
          `ZOOKEEPER_CONNECT=${external} does not answer (${r.error}); Sluice does not start a ZooKeeper it was pointed at`,
          '',
        );
      }
      await sleep(500);
    }
  }

  const l = layout(opts);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const reuse = async (): Promise<ZooKeeperHandle | undefined> => {
    let r = await probeZooKeeper(HOST, l.port);
    // A ZooKeeper that is up but not serving yet (someone else just started it): wait, bounded.
    const deadline = Date.now() + readyTimeoutMs;
    while (!r.ok && r.stage === 'starting' && Date.now() < deadline) {
      await sleep(200);
      r = await probeZooKeeper(HOST, l.port);
    }
    if (r.ok) return handle(l, true);
    if (r.stage === 'starting') {
      throw new ServiceStartError(
        'ZooKeeper',
        `${HOST}:${l.port} ${r.error} after ${Math.round(readyTimeoutMs / 1000)} s`,
        tailFile(l.logFile),
      );
    }
    // A port that accepts but does not answer, and is not our own server still starting, is someone else's.
    if (r.stage === 'answer' && livePid(l.pidFile, MARKER) === undefined) {
      throw new ServiceStartError(
        'ZooKeeper',
        `${HOST}:${l.port} accepts connections but does not answer as a ZooKeeper (${r.error}); another program holds the port — stop it or choose another port`,
        '',
      );
    }
    return undefined;
  };
  const found = await reuse();
  if (found) return found;

  mkdirSync(l.dir, { recursive: true });
  try {
    return await withLockFile(l.lockFile, readyTimeoutMs + 30_000, async () => {
      const again = await reuse();
      if (again) return again;
      const running = livePid(l.pidFile, MARKER);
      if (running !== undefined) {
        await waitUntilReady(l, running, null, readyTimeoutMs);
        return handle(l, true);
      }
      return await start(l, opts, readyTimeoutMs);
    });
  } catch (e) {
    if (e instanceof ServiceStartError) throw e;
    throw new ServiceStartError('ZooKeeper', (e as Error).message, tailFile(l.logFile));
  }
}

function handle(l: Layout, reused: boolean): ZooKeeperHandle {
  const pid = livePid(l.pidFile, MARKER);
  return {
    connectString: `${HOST}:${l.port}`,
    reused,
    ...(pid !== undefined ? { pid, logFile: l.logFile } : {}),
  };
}

async function start(l: Layout, opts: ZooKeeperOptions, readyTimeoutMs: number): Promise<ZooKeeperHandle> {
  const missing = ZOOKEEPER_CLASSPATH.filter((j) => !existsSync(j));
  if (missing.length > 0) {
    throw new ServiceStartError(
      'ZooKeeper',
      `${missing.join(', ')} not found; install Debian's zookeeper and libslf4j-java packages (\`bash scripts/setup.sh\` does)`,
      '',
    );
  }
  mkdirSync(l.dataDir, { recursive: true });
  writeFileSync(
    l.cfgFile,
    [
      '# Written by src/services/zookeeper.ts on every start.',
      'tickTime=2000',
      `dataDir=${l.dataDir}`,
      `clientPort=${l.port}`,
      `clientPortAddress=${HOST}`,
      'admin.enableServer=false',
      '4lw.commands.whitelist=srvr,ruok,stat',
      'autopurge.snapRetainCount=3',
      'autopurge.purgeInterval=1',
      '',
    ].join('\n'),
  );
  if (existsSync(l.logFile)) renameSync(l.logFile, `${l.logFile}.prev`);
  const out = openSync(l.logFile, 'a');
  const child = spawn(
    'java',
    [
      `-Xmx${opts.heap ?? '128m'}`,
      '-Djava.awt.headless=true',
      '-Dorg.slf4j.simpleLogger.showDateTime=true',
      '-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss,SSS',
      '-cp',
      ZOOKEEPER_CLASSPATH.join(':'),
      MARKER,
      l.cfgFile,
    ],
    { cwd: l.dir, detached: true, stdio: ['ignore', out, out] },
  );
  closeSync(out);
  const spawnError = await new Promise<string | null>((resolve) => {
    child.once('error', (e: NodeJS.ErrnoException) =>
      resolve(
        e.code === 'ENOENT' ? 'java is not installed (apt-get install openjdk-17-jre-headless)' : e.message,
      ),
    );
    child.once('spawn', () => resolve(null));
  });
  if (spawnError !== null || child.pid === undefined) {
    throw new ServiceStartError('ZooKeeper', spawnError ?? 'the JVM could not be spawned', '');
  }
  const exit: { value: string | null } = { value: null };
  child.once('exit', (code, signal) => (exit.value = signal ? `signal ${signal}` : `code ${code}`));
  child.unref();
  writeFileSync(l.pidFile, `${child.pid}\n`);
  await waitUntilReady(l, child.pid, exit, readyTimeoutMs);
  return { connectString: `${HOST}:${l.port}`, reused: false, pid: child.pid, logFile: l.logFile };
}

async function waitUntilReady(
  l: Layout,
  pid: number,
  exit: { value: string | null } | null,
  readyTimeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if ((await probeZooKeeper(HOST, l.port, 1_000)).ok) return;
    const exited = await exitStatus(exit, l.pidFile, MARKER);
    if (exited !== null) {
      await sleep(100);
      safeUnlink(l.pidFile);
      throw new ServiceStartError(
        'ZooKeeper',
        `the server process exited (${exited}) before it served requests`,
        tailFile(l.logFile, 30),
      );
    }
    if (Date.now() >= deadline) {
      await terminate(pid, 10_000);
      safeUnlink(l.pidFile);
      throw new ServiceStartError(
        'ZooKeeper',
        `it did not serve requests on ${HOST}:${l.port} within ${Math.round(readyTimeoutMs / 1000)} s; it was stopped`,
        tailFile(l.logFile, 30),
      );
    }
    await sleep(200);
  }
}

/** Stops the ZooKeeper Sluice started from this data dir (SIGTERM, SIGKILL after `graceMs`, default 15 s). */
export async function stopZooKeeper(
  opts: Pick<ZooKeeperOptions, 'dataDir' | 'port'> & { graceMs?: number } = {},
): Promise<StopResult> {
  return stopByPidFile(layout(opts).pidFile, MARKER, opts.graceMs ?? 15_000);
}

export async function zookeeperStatus(
  opts: Pick<ZooKeeperOptions, 'dataDir' | 'port'> = {},
): Promise<ServiceStatus> {
  const external = process.env.ZOOKEEPER_CONNECT?.trim();
  if (external && opts.port === undefined) {
    return {
      service: 'zookeeper',
      address: external,
      answering: (await externalAnswers(external)).ok,
      managedBy: 'env',
    };
  }
  const l = layout(opts);
  const pid = livePid(l.pidFile, MARKER);
  return {
    service: 'zookeeper',
    address: `${HOST}:${l.port}`,
    answering: (await probeZooKeeper(HOST, l.port)).ok,
    managedBy: pid !== undefined ? 'sluice' : 'system',
    ...(pid !== undefined ? { pid } : {}),
  };
}
