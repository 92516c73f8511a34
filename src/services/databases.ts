/**
 * PostgreSQL, MariaDB and Redis for tests, examples and the demo: check that they answer at the
 * protocol level and start the machine's Debian-packaged server when it does not.
 *
 * Which server (documented for users with their own servers):
 * - `SLUICE_POSTGRES_URL` — `postgres://user[:password]@host[:port]/db`;
 *   default `postgres://postgres@127.0.0.1:5432/test` (trust auth on the dev/CI machines).
 * - `SLUICE_MYSQL_URL` — `mysql://user[:password]@host[:port]/db`; default `mysql://root@127.0.0.1:3306/test`.
 * - `SLUICE_REDIS_URL` — `redis://[[user]:password@]host[:port][/db]`; default `redis://127.0.0.1:6379`.
 * When a variable is set Sluice only checks that server (waiting up to 10 s) and never starts it.
 * Otherwise, if the default server does not answer, the Debian server is started (root needed):
 * `pg_ctlcluster --skip-systemctl-redirect <ver> main start` for each cluster in /etc/postgresql,
 * `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`, and
 * `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no`.
 *
 * "Answers" means: PostgreSQL replies to a startup packet with anything but "the database system is
 * starting up" (57P03) — like pg_isready, an authentication error still counts; MariaDB sends its
 * handshake greeting; Redis replies to PING (+PONG, or -NOAUTH when it wants a password). Nothing
 * is authenticated and no password is ever sent or logged.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { ServiceStartError } from '../core/errors.js';
import { exchange, redactUrl, runCommand, sleep, sluicePath, tailFile, type ServiceStatus } from './util.js';

export interface DatabaseHandle {
  /** Connection URL (with the password if the user's variable had one: do not log it; see redactUrl). */
  url: string;
  host: string;
  port: number;
  /** True when it already answered (or the URL came from the environment); false when this call started it. */
  reused: boolean;
}

export interface DatabaseOptions {
  /** When the URL comes from the environment: how long to keep trying before ServiceStartError. Default 10 s. */
  externalWaitMs?: number;
}

type Probe = { ok: true; detail: string } | { ok: false; stage: 'connect' | 'answer'; error: string };

interface Spec {
  service: 'PostgreSQL' | 'MariaDB' | 'Redis';
  envVar: string;
  defaultUrl: string;
  defaultPort: number;
  readyTimeoutMs: number;
  probe(host: string, port: number, url: URL): Promise<Probe>;
  /** Starts the local server; returns the commands' output (for the error message). */
  start(): Promise<string>;
  logTail(): Promise<string>;
}

const PROBE_TIMEOUT_MS = 3_000;
const EXTERNAL_WAIT_MS = 10_000;

function target(spec: Spec): { url: string; fromEnv: boolean; parsed: URL; host: string; port: number } {
  const fromEnv = Boolean(process.env[spec.envVar]?.trim());
  const url = fromEnv ? process.env[spec.envVar]!.trim() : spec.defaultUrl;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ServiceStartError(spec.service, `${spec.envVar} is not a URL: ${redactUrl(url)}`, '');
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = parsed.port ? Number(parsed.port) : spec.defaultPort;
  return { url, fromEnv, parsed, host, port };
}

async function ensure(spec: Spec, opts: DatabaseOptions): Promise<DatabaseHandle> {
  const t = target(spec);
  const handle = (reused: boolean): DatabaseHandle => ({ url: t.url, host: t.host, port: t.port, reused });
  let r = await spec.probe(t.host, t.port, t.parsed);
  if (r.ok) return handle(true);

  if (t.fromEnv) {
    const deadline = Date.now() + (opts.externalWaitMs ?? EXTERNAL_WAIT_MS);
    while (!r.ok && Date.now() < deadline) {
      await sleep(500);
      r = await spec.probe(t.host, t.port, t.parsed);
    }
    if (r.ok) return handle(true);
    throw new ServiceStartError(
      spec.service,
      `${spec.envVar}=${redactUrl(t.url)} does not answer (${r.error}); Sluice does not start servers it was pointed at`,
      '',
    );
  }

  const output = await spec.start();
  const deadline = Date.now() + spec.readyTimeoutMs;
  for (;;) {
    r = await spec.probe(t.host, t.port, t.parsed);
    if (r.ok) return handle(false);
    if (Date.now() >= deadline) {
      const tail = [
        await spec.logTail(),
        output.trim() ? `--- start command output ---\n${output.trim()}` : '',
      ]
        .filter(Boolean)
        .join('\n');
      throw new ServiceStartError(
        spec.service,
        `${t.host}:${t.port} did not answer within ${Math.round(spec.readyTimeoutMs / 1000)} s after starting it (last check: ${r.error})`,
        tail,
      );
    }
    await sleep(300);
  }
}

async function status(spec: Spec): Promise<ServiceStatus> {
  const t = target(spec);
  const r = await spec.probe(t.host, t.port, t.parsed);
  return {
    service: spec.service.toLowerCase(),
    address: redactUrl(t.url),
    answering: r.ok,
    managedBy: t.fromEnv ? 'env' : 'system',
  };
}

async function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await runCommand(cmd, args, { timeoutMs });
  const line = `$ ${cmd} ${args.join(' ')}\n${r.output.trim()}${r.error ? `\n${r.error}` : ''}${r.code ? ` (exit ${r.code})` : ''}`;
  return line.trim();
}

// ---------------------------------------------------------------- PostgreSQL

function pgMessages(d: Buffer): { type: string; body: Buffer }[] {
  const out: { type: string; body: Buffer }[] = [];
  let i = 0;
  while (i + 5 <= d.length) {
    const len = d.readInt32BE(i + 1);
    if (i + 1 + len > d.length) break;
    out.push({ type: String.fromCharCode(d[i]!), body: d.subarray(i + 5, i + 1 + len) });
    i += 1 + len;
  }
  return out;
}

function pgErrorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const end = body.indexOf(0, i + 1);
    fields[String.fromCharCode(body[i]!)] = body.toString('utf8', i + 1, end < 0 ? body.length : end);
    i = end < 0 ? body.length : end + 1;
  }
  return fields;
}

async function probePostgres(host: string, port: number, url: URL): Promise<Probe> {
  const user = decodeURIComponent(url.username) || 'postgres';
  const db = decodeURIComponent(url.pathname.replace(/^\//, '')) || user;
  const params = Buffer.from(`user\0${user}\0database\0${db}\0application_name\0sluice-probe\0\0`);
  const startup = Buffer.alloc(8 + params.length);
  startup.writeInt32BE(startup.length, 0);
  startup.writeInt32BE(196608, 4); // protocol 3.0
  params.copy(startup, 8);
  const done = (m: { type: string; body: Buffer }): boolean =>
    m.type === 'E' || m.type === 'Z' || (m.type === 'R' && m.body.readInt32BE(0) !== 0);
  const r = await exchange(
    host,
    port,
    startup,
    (d) => pgMessages(d).some(done),
    PROBE_TIMEOUT_MS,
    // After ReadyForQuery send Terminate, so the server logs nothing.
    (d) => (pgMessages(d).some((m) => m.type === 'Z') ? Buffer.from([0x58, 0, 0, 0, 4]) : null),
  );
  if (!r.ok) return r;
  const msgs = pgMessages(r.data);
  const err = msgs.find((m) => m.type === 'E');
  if (err) {
    const f = pgErrorFields(err.body);
    if (f.C === '57P03')
      return { ok: false, stage: 'answer', error: f.M ?? 'the database system is starting up' };
    return { ok: true, detail: `answers (${f.C ?? '?'}: ${f.M ?? ''})` };
  }
  if (msgs.length === 0) return { ok: false, stage: 'answer', error: 'not a PostgreSQL answer' };
  const version = msgs
    .filter((m) => m.type === 'S')
    .map((m) => m.body.toString('utf8').split('\0'))
    .find(([k]) => k === 'server_version')?.[1];
  return { ok: true, detail: version ? `PostgreSQL ${version}` : 'answers' };
}

const postgresSpec: Spec = {
  service: 'PostgreSQL',
  envVar: 'SLUICE_POSTGRES_URL',
  defaultUrl: 'postgres://postgres@127.0.0.1:5432/test',
  defaultPort: 5432,
  readyTimeoutMs: 30_000,
  probe: probePostgres,
  async start() {
    const versions = postgresVersions();
    if (versions.length === 0) {
      throw new ServiceStartError(
        'PostgreSQL',
        'no cluster in /etc/postgresql: install the postgresql package (`bash scripts/setup.sh` does) or set SLUICE_POSTGRES_URL',
        '',
      );
    }
    const out: string[] = [];
    for (const v of versions)
      out.push(await run('pg_ctlcluster', ['--skip-systemctl-redirect', v, 'main', 'start']));
    return out.join('\n');
  },
  async logTail() {
    return postgresVersions()
      .map((v) => `/var/log/postgresql/postgresql-${v}-main.log`)
      .map((f) => (existsSync(f) ? `${f}:\n${tailFile(f, 30)}` : ''))
      .filter(Boolean)
      .join('\n');
  },
};

function postgresVersions(): string[] {
  if (!existsSync('/etc/postgresql')) return [];
  return readdirSync('/etc/postgresql').filter((v) => existsSync(`/etc/postgresql/${v}/main`));
}

// ---------------------------------------------------------------- MariaDB

async function probeMariaDb(host: string, port: number): Promise<Probe> {
  const r = await exchange(
    host,
    port,
    null, // the server speaks first
    (d) => d.length >= 4 && d.length >= 4 + (d[0]! | (d[1]! << 8) | (d[2]! << 16)),
    PROBE_TIMEOUT_MS,
  );
  if (!r.ok) return r;
  const payload = r.data.subarray(4);
  if (payload[0] === 10) {
    const end = payload.indexOf(0, 1);
    return { ok: true, detail: `MariaDB/MySQL ${payload.toString('latin1', 1, end < 0 ? 1 : end)}` };
  }
  if (payload[0] === 0xff) {
    // An error greeting (too many connections, host blocked): the server is up and said why.
    return {
      ok: true,
      detail: `answers with error ${payload.readUInt16LE(1)}: ${payload.toString('utf8', 3)}`,
    };
  }
  return { ok: false, stage: 'answer', error: 'not a MySQL protocol greeting' };
}

const MARIADBD = '/usr/sbin/mariadbd';

const mariadbSpec: Spec = {
  service: 'MariaDB',
  envVar: 'SLUICE_MYSQL_URL',
  defaultUrl: 'mysql://root@127.0.0.1:3306/test',
  defaultPort: 3306,
  readyTimeoutMs: 60_000,
  probe: probeMariaDb,
  async start() {
    if (!existsSync(MARIADBD)) {
      throw new ServiceStartError(
        'MariaDB',
        `${MARIADBD} not found: install mariadb-server (\`bash scripts/setup.sh\` does) or set SLUICE_MYSQL_URL`,
        '',
      );
    }
    mkdirSync(sluicePath('logs'), { recursive: true });
    // /run is a tmpfs: after a reboot the socket directory is gone and mariadbd cannot start.
    const out = [await run('install', ['-d', '-o', 'mysql', '-g', 'mysql', '/run/mysqld'], 10_000)];
    out.push(
      await run('start-stop-daemon', [
        '--start',
        '--oknodo',
        '--background',
        '--output',
        sluicePath('logs', 'mariadbd.out'),
        '--exec',
        MARIADBD,
      ]),
    );
    return out.join('\n');
  },
  async logTail() {
    return [await mariadbErrorLog(), sluicePath('logs', 'mariadbd.out')]
      .filter((f): f is string => f !== undefined && existsSync(f))
      .map((f) => `${f}:\n${tailFile(f, 30)}`)
      .join('\n');
  },
};

/** The server's log-error file from its option files (none set: mariadbd logs to stderr = mariadbd.out). */
async function mariadbErrorLog(): Promise<string | undefined> {
  const r = await runCommand('my_print_defaults', ['--mysqld'], { timeoutMs: 5_000 });
  return /^--log[-_]error=(.+)$/m.exec(r.output)?.[1]?.trim();
}

// ---------------------------------------------------------------- Redis

async function probeRedis(host: string, port: number): Promise<Probe> {
  const r = await exchange(host, port, 'PING\r\n', (d) => d.includes('\r\n'), PROBE_TIMEOUT_MS);
  if (!r.ok) return r;
  const line = r.data.toString('utf8').split('\r\n')[0]!;
  if (line === '+PONG') return { ok: true, detail: 'PONG' };
  if (line.startsWith('-LOADING')) return { ok: false, stage: 'answer', error: line.slice(1) };
  if (/^-(NOAUTH|WRONGPASS|ERR)/.test(line)) return { ok: true, detail: line.slice(1) };
  return { ok: false, stage: 'answer', error: `not a Redis answer: ${JSON.stringify(line.slice(0, 60))}` };
}

const redisSpec: Spec = {
  service: 'Redis',
  envVar: 'SLUICE_REDIS_URL',
  defaultUrl: 'redis://127.0.0.1:6379',
  defaultPort: 6379,
  readyTimeoutMs: 15_000,
  probe: probeRedis,
  async start() {
    mkdirSync(sluicePath('logs'), { recursive: true });
    return run('redis-server', [
      '--daemonize',
      'yes',
      '--bind',
      '127.0.0.1',
      '-::1',
      '--port',
      '6379',
      '--save',
      '',
      '--appendonly',
      'no',
      '--logfile',
      sluicePath('logs', 'redis.log'),
    ]);
  },
  async logTail() {
    const f = sluicePath('logs', 'redis.log');
    return existsSync(f) ? `${f}:\n${tailFile(f, 30)}` : '';
  },
};

// ---------------------------------------------------------------- public API

/** PostgreSQL answers (started if it is the default local one and was down). */
export function ensurePostgres(opts: DatabaseOptions = {}): Promise<DatabaseHandle> {
  return ensure(postgresSpec, opts);
}

/** MariaDB answers (started if it is the default local one and was down). */
export function ensureMariaDb(opts: DatabaseOptions = {}): Promise<DatabaseHandle> {
  return ensure(mariadbSpec, opts);
}

/** Redis answers (started if it is the default local one and was down). */
export function ensureRedis(opts: DatabaseOptions = {}): Promise<DatabaseHandle> {
  return ensure(redisSpec, opts);
}

export function postgresStatus(): Promise<ServiceStatus> {
  return status(postgresSpec);
}

export function mariadbStatus(): Promise<ServiceStatus> {
  return status(mariadbSpec);
}

export function redisStatus(): Promise<ServiceStatus> {
  return status(redisSpec);
}
