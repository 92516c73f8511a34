/**
 * A SECOND local single-node Kafka broker (KRaft, broker + controller in one JVM, the same jars as
 * ./kafka.ts) that is secured like a production cluster, for the tests of secured clusters:
 * TLS, SASL (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN), mutual TLS and KRaft's StandardAuthorizer with ACLs.
 * Nothing starts it unless asked: tests call {@link ensureSecureKafka} (it is not part of
 * `services.ts up all`); `node --import tsx scripts/services.ts up|down|status kafka-secure` manages it by hand.
 * It runs DETACHED like the plain broker (shared by test files, reused when running, lock file
 * against concurrent starts), with data, logs, pid file and credentials under `<repo>/.sluice/kafka-secure/`.
 *
 * Listeners (all on 127.0.0.1; the defaults keep clear of the plain broker's 9092 + controller 9093):
 * - `SASL_SSL` :9094 — clients; TLS with the test CA, then SASL SCRAM-SHA-512 / SCRAM-SHA-256 / PLAIN.
 *   A client certificate is optional (`ssl.client.auth=requested`: checked against the CA when sent;
 *   the principal still comes from SASL). Also the inter-broker listener: the broker authenticates to
 *   itself (transaction markers) as `User:broker` with SCRAM-SHA-512.
 * - `CONTROLLER` :9095 — SASL_PLAINTEXT with PLAIN only (SCRAM cannot authenticate the controller
 *   listener: its credentials live in the metadata the controller serves), user `broker`. Not advertised.
 * - `SSL` :9096 — mutual TLS only (`ssl.client.auth=required`); the principal is the certificate's CN
 *   (`ssl.principal.mapping.rules`): the client certificate made at set-up is `User:sluice-client`.
 * Authorization: `StandardAuthorizer`, `allow.everyone.if.no.acl.found=false`, super users `User:admin`
 * and `User:broker`. Users `admin`, `alice`, `bob`, `carol` exist for all three mechanisms (SCRAM
 * bootstrapped by `StorageTool format --add-scram`, PLAIN in the listener's JAAS config) with the same
 * random password per mechanism, made when the data dir is first formatted and kept in
 * `credentials.json`; `alice`, `bob`, `carol` have no ACLs until a test grants some ({@link grantAcls}).
 * Tests read names, passwords, addresses and file paths from the {@link SecureKafkaHandle}.
 *
 * TLS material (CA, broker PKCS12 keystore, truststore, client certificate) comes from
 * `scripts/kafka/make-tls.sh` (openssl + keytool) into `<repo>/.sluice/tls/`: run by `scripts/setup.sh`,
 * and by ensureSecureKafka() when it is missing or expires within a day.
 *
 * Verified on the 2-core dev machine (Kafka 4.3.1, OpenJDK 17, librdkafka 2.15.1) while other test runs
 * and the plain broker kept it busy (load average 5-14; times on an idle machine are lower):
 * - make-tls.sh: 1.4-1.9 s (1 s of CPU, most of it the keytool JVM); up to 7 s at load 14. Checking
 *   existing material (files + expiry, in Node) takes ~1 ms.
 * - `StorageTool format` with 10 `--add-scram` credentials (5 users x 2 SCRAM mechanisms): 3.1 s, up to
 *   11 s under heavy load. It prints the salted credentials (`UserScramCredentialRecord`); only shown,
 *   masked, on failure.
 * - Spawn to `Kafka Server started` + TLS ApiVersions answer: 6.4 s (load 6), 19 s at load 14. A first
 *   ensureSecureKafka() on a fresh checkout (TLS + format + start): 9.5-11 s at load 5-6, 34 s at load
 *   14; a reuse: ~50 ms. SIGTERM shutdown: 0.7-1.2 s. A restart (data kept): 9-12 s, users, passwords
 *   and ACLs intact.
 * - Kafka's own tools (AclCommand, ConfigCommand) are a JVM + TLS + SCRAM each: 2.5-5 s per call.
 *   AclCommand takes one operation list per call and checks it against each resource type ("ResourceType
 *   GROUP only supports operations [READ, ...]", exit 1), so grantAcls() runs one call per distinct spec.
 *   ConfigCommand refuses two SCRAM mechanisms for one user in one call ("A user credential cannot be
 *   altered twice in the same request"): one call per mechanism.
 * - Errors, as `@confluentinc/kafka-javascript` (node-rdkafka-style API) reports them:
 *   - wrong password: `event.error` with message 'authentication failure' (librdkafka ERR__AUTHENTICATION,
 *     "Local: Authentication failure"; the binding's event.error loses the numeric code: `code` is -1)
 *     within ~0.4 s, and `event.log` FAIL "SASL authentication error: Authentication failed during
 *     authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512" (PLAIN: "SASL
 *     authentication error: Authentication failed: Invalid username or password"); librdkafka keeps
 *     retrying, so Producer.connect() only fails at its timeout with -195 "broker transport failure", and
 *     the KafkaJS-style API rejects after 30 s with KafkaJSConnectionError ERR__TRANSPORT.
 *   - plaintext client on the SASL_SSL port: the broker closes the connection ("Disconnected: connection
 *     closed by peer ... in state APIVERSION_QUERY"), event.error 'all broker connections are down',
 *     admin calls end in -185 ERR__TIMED_OUT.
 *   - no `ssl.ca.location`: "SSL handshake failed: ... certificate verify failed", event.error 'ssl error'.
 *   - mTLS listener without a client certificate: "sslv3 alert bad certificate: SSL alert number 42".
 *   - authenticated but no ACL: produce → delivery report ERR_TOPIC_AUTHORIZATION_FAILED (29) within
 *     ~0.4 s (connect() itself succeeds: metadata just lists no topics), createTopic → 29, a consumer
 *     with a group.id (even with assign()) → consume() error ERR_GROUP_AUTHORIZATION_FAILED (30).
 *   - the binding's AdminClient.disconnect() blocks the event loop until a pending call (createTopic,
 *     listTopics) ends, i.e. up to its timeout: use short admin timeouts when a failure is expected.
 * - The broker logs every denial in logs/server.log ("Principal = User:bob is Denied operation = DESCRIBE
 *   from host = 127.0.0.1 on resource = Topic:LITERAL:<t> for request = Metadata ... based on rule
 *   DefaultDeny (kafka.authorizer.logger)"): grep it when a test is refused unexpectedly.
 * - kcat on Debian 12 links librdkafka 2.0.2, whose SCRAM fails against Kafka 4.x ("invalid credentials":
 *   a nonce bug fixed in librdkafka 2.6.1); kcat works here with PLAIN only.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ServiceStartError } from '../core/errors.js';
import { ensureTlsMaterial, probeSecureKafka, tlsPaths, tlsProblem, type SecureKafkaTls } from './tls.js';
import { brokerProperties, formatKafkaStorage, log4jConfig, spawnKafkaJvm, waitForBroker } from './kafka.js';
import {
  livePid,
  safeUnlink,
  sluicePath,
  tailFile,
  terminate,
  withLockFile,
  stopByPidFile,
  stringifyProperties,
  type ServiceStatus,
  type StopResult,
} from './util.js';

export type SaslMechanism = 'SCRAM-SHA-512' | 'SCRAM-SHA-256' | 'PLAIN';

/** The mechanisms the SASL_SSL listener accepts. */
export const SECURE_KAFKA_MECHANISMS: readonly SaslMechanism[] = ['SCRAM-SHA-512', 'SCRAM-SHA-256', 'PLAIN'];

/** The users every secured broker has: `admin` is a super user, the others have no ACLs at first. */
export const SECURE_KAFKA_USERS = ['admin', 'alice', 'bob', 'carol'] as const;
export type SecureKafkaUserName = (typeof SECURE_KAFKA_USERS)[number];

export interface SecureKafkaOptions {
  /** SASL_SSL port on 127.0.0.1. Default 9094. */
  port?: number;
  /** Controller (SASL_PLAINTEXT, PLAIN) port. Default `port + 1`. */
  controllerPort?: number;
  /** Mutual-TLS (SSL, client certificate required) port. Default `port + 2`. */
  mtlsPort?: number;
  /** Holds `data/`, `logs/`, `server.properties`, `credentials.json`, `kafka.pid`. Default `<repo>/.sluice/kafka-secure`. */
  dataDir?: string;
  /** The TLS material (see scripts/kafka/make-tls.sh). Default `<repo>/.sluice/tls`. */
  tlsDir?: string;
  /** Directory of the Kafka jars. Default env SLUICE_KAFKA_LIB or `<repo>/.sluice/kafka/lib`. */
  libDir?: string;
  /** JVM heap (-Xms and -Xmx). Default '512m'. */
  heap?: string;
  /** Broker properties added to or replacing the defaults (applied when this call starts the broker). */
  properties?: Record<string, string | number | boolean>;
  /** How long to wait for the broker to be ready. Default 120 s. */
  readyTimeoutMs?: number;
}

export interface SecureKafkaUser {
  username: string;
  password: string;
  /** The principal ACLs name: `User:<username>`. */
  principal: string;
}

export interface SecureKafkaHandle {
  /** The SASL_SSL listener, for `bootstrap.servers`. */
  bootstrapServers: string;
  /** The mutual-TLS listener (security.protocol=SSL, client certificate required). */
  mtlsBootstrapServers: string;
  /** True when the broker was already running; false when this call started it. */
  reused: boolean;
  pid?: number;
  logFile?: string;
  /** What the SASL_SSL listener accepts. */
  mechanisms: readonly SaslMechanism[];
  /** Users valid for every mechanism; `admin` is a super user, the others start without ACLs. */
  users: Record<SecureKafkaUserName, SecureKafkaUser>;
  /** Principals the authorizer never checks (`User:admin` and the broker's own `User:broker`). */
  superUsers: string[];
  tls: SecureKafkaTls;
  /** Java client properties (SASL_SSL, SCRAM-SHA-512 as admin) for Kafka's tools' `--command-config`. */
  adminConfigFile: string;
  /** The Kafka jars (for running Kafka's tools). */
  libDir: string;
}

const DEFAULT_PORT = 9094;
const HOST = '127.0.0.1';
const MARKER = 'kafka.Kafka';
const CREDENTIALS_VERSION = 1;
/** The broker's own user (inter-broker and controller connections); a super user. */
const BROKER_USER = 'broker';
/** The SCRAM mechanisms every user has credentials for. */
export const SCRAM_MECHANISMS = ['SCRAM-SHA-512', 'SCRAM-SHA-256'] as const;

interface Layout {
  port: number;
  controllerPort: number;
  mtlsPort: number;
  dir: string;
  dataDir: string;
  logDir: string;
  logFile: string;
  outFile: string;
  propsFile: string;
  log4jFile: string;
  toolsLog4jFile: string;
  adminConfigFile: string;
  credentialsFile: string;
  portsFile: string;
  pidFile: string;
  clusterIdFile: string;
  lockFile: string;
  libDir: string;
  tlsDir: string;
}

/**
 * The ports of a data dir's broker: the options, else those it was started with (`ports.json`,
 * written when the defaults were taken by another checkout's broker), else 9094 and the two after.
 */
function layout(opts: SecureKafkaOptions): Layout {
  const dir = path.resolve(opts.dataDir ?? sluicePath('kafka-secure'));
  const saved = opts.port === undefined ? readPorts(path.join(dir, 'ports.json')) : undefined;
  const port = opts.port ?? saved?.port ?? DEFAULT_PORT;
  const logDir = path.join(dir, 'logs');
  return {
    port,
    controllerPort: opts.controllerPort ?? saved?.controllerPort ?? port + 1,
    mtlsPort: opts.mtlsPort ?? saved?.mtlsPort ?? port + 2,
    dir,
    dataDir: path.join(dir, 'data'),
    logDir,
    logFile: path.join(logDir, 'server.log'),
    outFile: path.join(logDir, 'kafka.out'),
    propsFile: path.join(dir, 'server.properties'),
    log4jFile: path.join(dir, 'log4j2.xml'),
    toolsLog4jFile: path.join(dir, 'tools-log4j2.xml'),
    adminConfigFile: path.join(dir, 'admin.properties'),
    credentialsFile: path.join(dir, 'credentials.json'),
    portsFile: path.join(dir, 'ports.json'),
    pidFile: path.join(dir, 'kafka.pid'),
    clusterIdFile: path.join(dir, 'cluster-id'),
    lockFile: path.join(dir, 'start.lock'),
    libDir: path.resolve(opts.libDir ?? process.env.SLUICE_KAFKA_LIB ?? sluicePath('kafka', 'lib')),
    tlsDir: path.resolve(opts.tlsDir ?? sluicePath('tls')),
  };
}

// ------------------------------------------------------------------ credentials

interface Credentials {
  version: number;
  /** user name -> password (the same for SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN). */
  users: Record<string, string>;
}

function readCredentials(file: string): Credentials | undefined {
  try {
    const c = JSON.parse(readFileSync(file, 'utf8')) as Credentials;
    const names = [...SECURE_KAFKA_USERS, BROKER_USER];
    if (c.version !== CREDENTIALS_VERSION || !names.every((n) => typeof c.users?.[n] === 'string'))
      return undefined;
    return c;
  } catch {
    return undefined;
  }
}

function newCredentials(): Credentials {
  const users: Record<string, string> = {};
  for (const n of [...SECURE_KAFKA_USERS, BROKER_USER]) users[n] = `${n}-${randomBytes(12).toString('hex')}`;
  return { version: CREDENTIALS_VERSION, users };
}

function writePrivate(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600); // an existing file keeps its mode on write
}

// ------------------------------------------------------------------ broker configuration

/** A JAAS option value: double-quoted, with `\` and `"` escaped. */
const jaasValue = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

function secureBrokerProperties(l: Layout, creds: Credentials): Record<string, string> {
  const t = tlsPaths(l.tlsDir);
  const keystorePassword = readFileSync(t.brokerKeystorePasswordFile, 'utf8').trim();
  const truststorePassword = readFileSync(t.truststorePasswordFile, 'utf8').trim();
  const brokerPassword = creds.users[BROKER_USER]!;
  const plainUsers = Object.entries(creds.users)
    .map(([name, pw]) => `user_${name}=${jaasValue(pw)}`)
    .join(' ');
  const plain = 'org.apache.kafka.common.security.plain.PlainLoginModule required';
  const scram = 'org.apache.kafka.common.security.scram.ScramLoginModule required';
  const self = `username=${jaasValue(BROKER_USER)} password=${jaasValue(brokerPassword)}`;
  return {
    ...brokerProperties(l),
    listeners: `SASL_SSL://${HOST}:${l.port},CONTROLLER://${HOST}:${l.controllerPort},SSL://${HOST}:${l.mtlsPort}`,
    'advertised.listeners': `SASL_SSL://${HOST}:${l.port},SSL://${HOST}:${l.mtlsPort}`,
    'listener.security.protocol.map': 'CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL',
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'SASL_SSL',
    'sasl.mechanism.inter.broker.protocol': 'SCRAM-SHA-512',
    'sasl.mechanism.controller.protocol': 'PLAIN',
    'sasl.enabled.mechanisms': SECURE_KAFKA_MECHANISMS.join(','),
    'listener.name.controller.sasl.enabled.mechanisms': 'PLAIN',
    'listener.name.controller.plain.sasl.jaas.config': `${plain} ${self} user_${BROKER_USER}=${jaasValue(brokerPassword)};`,
    // Server side: PLAIN checks the user_<name> entries; SCRAM checks the metadata's credentials. The
    // username/password are what the broker sends when it connects to itself (inter-broker).
    'listener.name.sasl_ssl.plain.sasl.jaas.config': `${plain} ${self} ${plainUsers};`,
    'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config': `${scram} ${self};`,
    'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config': `${scram} ${self};`,
    'listener.name.sasl_ssl.ssl.client.auth': 'requested',
    'listener.name.ssl.ssl.client.auth': 'required',
    // CN=sluice-client,O=Sluice -> User:sluice-client
    'ssl.principal.mapping.rules': 'RULE:^CN=([^,]+),O=Sluice$/$1/,DEFAULT',
    'ssl.keystore.type': 'PKCS12',
    'ssl.keystore.location': t.brokerKeystore,
    'ssl.keystore.password': keystorePassword,
    'ssl.key.password': keystorePassword,
    'ssl.truststore.type': 'PKCS12',
    'ssl.truststore.location': t.truststoreLocation,
    'ssl.truststore.password': truststorePassword,
    'authorizer.class.name': 'org.apache.kafka.metadata.authorizer.StandardAuthorizer',
    'allow.everyone.if.no.acl.found': 'false',
    'super.users': `User:admin;User:${BROKER_USER}`,
  };
}

/** Java client properties for Kafka's tools: SASL_SSL as admin with SCRAM-SHA-512, trusting the test CA. */
function adminClientProperties(l: Layout, creds: Credentials): string {
  const t = tlsPaths(l.tlsDir);
  return [
    '# Written by src/services/secure-kafka.ts: Kafka tools --command-config for the secured broker (admin).',
    'security.protocol=SASL_SSL',
    'sasl.mechanism=SCRAM-SHA-512',
    `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password=${jaasValue(creds.users.admin!)};`,
    'ssl.truststore.type=PKCS12',
    `ssl.truststore.location=${t.truststoreLocation}`,
    `ssl.truststore.password=${readFileSync(t.truststorePasswordFile, 'utf8').trim()}`,
    'request.timeout.ms=15000',
    'default.api.timeout.ms=30000',
    '',
  ].join('\n');
}

/** Kafka's tools log errors only, to stderr (their own output is on stdout). */
const TOOLS_LOG4J = `<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="error" shutdownHook="disable">
  <Appenders><Console name="err" target="SYSTEM_ERR"><PatternLayout pattern="%p %m (%c)%n"/></Console></Appenders>
  <Loggers><Root level="error"><AppenderRef ref="err"/></Root></Loggers>
</Configuration>
`;

// ------------------------------------------------------------------ ensure / stop / status

/**
 * Makes sure the secured broker runs (reusing it when it answers with this data dir's TLS material,
 * else starting it detached; concurrent callers are serialised by a lock file) and returns everything a
 * test needs to connect: addresses, users and passwords, mechanisms, CA and client certificate paths.
 *
 * @throws ServiceStartError('Kafka (secured)', reason, logTail) when it cannot be started.
 */
export async function ensureSecureKafka(opts: SecureKafkaOptions = {}): Promise<SecureKafkaHandle> {
  try {
    return await ensureAt(layout(opts), opts);
  } catch (e) {
    // Another checkout's broker (e.g. a developer's, while CI runs a fresh clone on the same machine)
    // holds the default ports: when no port was asked for, this data dir's broker takes free ones.
    if (!(e as { [FOREIGN]?: boolean })[FOREIGN] || opts.port !== undefined) throw e;
    const [port, controllerPort, mtlsPort] = await freePorts(3);
    const l = layout(opts);
    mkdirSync(l.dir, { recursive: true });
    writeFileSync(l.portsFile, JSON.stringify({ port, controllerPort, mtlsPort }) + '\n');
    return ensureAt(layout(opts), opts);
  }
}

/** Marks the error of a port answered by a server that is not this data dir's broker. */
const FOREIGN = Symbol('foreign broker');

async function ensureAt(l: Layout, opts: SecureKafkaOptions): Promise<SecureKafkaHandle> {
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  const foreign = (reason: string): ServiceStartError =>
    Object.assign(new ServiceStartError('Kafka (secured)', reason, ''), { [FOREIGN]: true });

  /** The handle when our broker answers; undefined when nothing answers; throws for someone else's server. */
  const reuse = async (): Promise<SecureKafkaHandle | undefined> => {
    if (tlsProblem(l.tlsDir) !== '') return undefined; // the material must be made (and the broker restarted)
    const r = await probeSecureKafka(HOST, l.port, tlsPaths(l.tlsDir).caLocation);
    const ours = livePid(l.pidFile, MARKER);
    if (r.ok) {
      const creds = readCredentials(l.credentialsFile);
      if (creds) return handle(l, creds, true);
      if (ours === undefined) {
        throw foreign(
          `${HOST}:${l.port} answers but ${l.credentialsFile} is missing: that broker was not started from ${l.dir}; stop it or choose another port`,
        );
      }
      return undefined; // ours but its credentials are gone: restart (below)
    }
    if (r.stage === 'connect') return undefined;
    if (ours === undefined) {
      throw foreign(
        `${HOST}:${l.port} accepts connections but is not the secured broker of ${l.dir} (${r.stage}: ${r.error}); stop it or choose another port`,
      );
    }
    return undefined; // ours: still starting, or started with other TLS material (handled below)
  };

  const found = await reuse();
  if (found) return found;

  mkdirSync(l.dir, { recursive: true });
  let lockError: unknown;
  try {
    return await withLockFile(l.lockFile, readyTimeoutMs + 120_000, async () => {
      const again = await reuse();
      if (again) return again;
      await ensureTlsMaterial(l.tlsDir);
      const running = livePid(l.pidFile, MARKER);
      if (running !== undefined) {
        const r = await probeSecureKafka(HOST, l.port, tlsPaths(l.tlsDir).caLocation);
        if (!r.ok && r.stage === 'connect') {
          // Our broker from an earlier call is still starting: wait for it rather than start another.
          await waitUntilReady(l, running, null, readyTimeoutMs);
          const creds = readCredentials(l.credentialsFile);
          if (creds) return handle(l, creds, true);
        }
        // It answers with other TLS material (made anew since it started) or lost its credentials file.
        await terminate(running, 30_000);
        safeUnlink(l.pidFile);
      }
      return await start(l, opts, readyTimeoutMs);
    });
  } catch (e) {
    lockError = e;
  }
  if (lockError instanceof ServiceStartError) throw lockError;
  throw new ServiceStartError('Kafka (secured)', (lockError as Error).message, tailFile(l.logFile));
}

function readPorts(file: string): { port: number; controllerPort: number; mtlsPort: number } | undefined {
  try {
    const p = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const ok = [p.port, p.controllerPort, p.mtlsPort].every((n) => Number.isInteger(n));
    return ok ? (p as { port: number; controllerPort: number; mtlsPort: number }) : undefined;
  } catch {
    return undefined;
  }
}

/** `n` distinct ports that nothing listens on now (the OS's choice). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer();
          server.once('error', reject);
          server.listen(0, HOST, () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function handle(l: Layout, creds: Credentials, reused: boolean): SecureKafkaHandle {
  const pid = livePid(l.pidFile, MARKER);
  const { brokerKeystore: _k, brokerKeystorePasswordFile: _p, ...tlsFiles } = tlsPaths(l.tlsDir);
  const users = Object.fromEntries(
    SECURE_KAFKA_USERS.map((n) => [n, { username: n, password: creds.users[n]!, principal: `User:${n}` }]),
  ) as Record<SecureKafkaUserName, SecureKafkaUser>;
  return {
    bootstrapServers: `${HOST}:${l.port}`,
    mtlsBootstrapServers: `${HOST}:${l.mtlsPort}`,
    reused,
    ...(pid !== undefined ? { pid, logFile: l.logFile } : {}),
    mechanisms: SECURE_KAFKA_MECHANISMS,
    users,
    superUsers: ['User:admin', `User:${BROKER_USER}`],
    tls: tlsFiles,
    adminConfigFile: l.adminConfigFile,
    libDir: l.libDir,
  };
}

async function start(
  l: Layout,
  opts: SecureKafkaOptions,
  readyTimeoutMs: number,
): Promise<SecureKafkaHandle> {
  if (!existsSync(l.libDir) || !readdirSync(l.libDir).some((f) => /^kafka_2\.13-.*\.jar$/.test(f))) {
    throw new ServiceStartError(
      'Kafka (secured)',
      `no Kafka jars in ${l.libDir}; run \`bash scripts/setup.sh\` (it copies them from Maven Central)`,
      '',
    );
  }
  const metaFile = path.join(l.dataDir, 'meta.properties');
  let creds = readCredentials(l.credentialsFile);
  if (!creds) {
    // The SCRAM users are written into the metadata at format time: new passwords need a new log.
    rmSync(l.dataDir, { recursive: true, force: true });
    creds = newCredentials();
    writePrivate(l.credentialsFile, JSON.stringify(creds, null, 2) + '\n');
  }
  mkdirSync(l.dataDir, { recursive: true });
  mkdirSync(l.logDir, { recursive: true });

  const props = { ...secureBrokerProperties(l, creds), ...stringifyProperties(opts.properties ?? {}) };
  writePrivate(
    l.propsFile,
    `# Written by src/services/secure-kafka.ts on every start; edit SecureKafkaOptions.properties instead.\n` +
      Object.entries(props)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n') +
      '\n',
  );
  writePrivate(l.adminConfigFile, adminClientProperties(l, creds));
  writeFileSync(l.log4jFile, log4jConfig(l.logFile));
  writeFileSync(l.toolsLog4jFile, TOOLS_LOG4J);
  const classpath = `${l.libDir}/*`;
  const log4jArg = `-Dlog4j2.configurationFile=${l.log4jFile}`;

  if (!existsSync(metaFile)) {
    const scram = [...SECURE_KAFKA_USERS, BROKER_USER].flatMap((name) =>
      SCRAM_MECHANISMS.flatMap((m) => ['--add-scram', `${m}=[name=${name},password=${creds.users[name]}]`]),
    );
    await formatKafkaStorage({
      service: 'Kafka (secured)',
      ...l,
      log4jArg,
      classpath,
      timeoutMs: 90_000,
      extraArgs: scram,
      // On success the tool lists the salted SCRAM credentials: never show them.
      scrub: (out) => out.replace(/UserScramCredentialRecord\([^)]*\)/g, 'UserScramCredentialRecord(...)'),
    });
  }

  const { pid, exit } = await spawnKafkaJvm({
    service: 'Kafka (secured)',
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
  return handle(l, creds, false);
}

/** Waits for the broker (its log line, then TLS + ApiVersions with the test CA); stops it and throws on failure. */
function waitUntilReady(
  l: Layout,
  pid: number,
  exit: { value: string | null } | null,
  readyTimeoutMs: number,
): Promise<void> {
  const ca = tlsPaths(l.tlsDir).caLocation;
  return waitForBroker({
    service: 'Kafka (secured)',
    ...l,
    pid,
    exit,
    readyTimeoutMs,
    probe: async () => {
      const r = await probeSecureKafka(HOST, l.port, ca, 2_000);
      return r.ok ? undefined : `TLS to ${HOST}:${l.port} fails: ${r.stage}: ${r.error}`;
    },
  });
}

/**
 * Stops the secured broker Sluice started from this data dir (SIGTERM, SIGKILL after `graceMs`,
 * default 30 s). Its data, users and ACLs are kept for the next start.
 */
export async function stopSecureKafka(
  opts: Pick<SecureKafkaOptions, 'dataDir' | 'port'> & { graceMs?: number } = {},
): Promise<StopResult> {
  return stopByPidFile(layout(opts).pidFile, MARKER, opts.graceMs ?? 30_000);
}

/** Whether the secured broker answers TLS + ApiVersions with this repo's CA, and its pid when Sluice manages it. */
export async function secureKafkaStatus(
  opts: Pick<SecureKafkaOptions, 'dataDir' | 'port' | 'tlsDir'> = {},
): Promise<ServiceStatus> {
  const l = layout(opts);
  const pid = livePid(l.pidFile, MARKER);
  const answering = (await probeSecureKafka(HOST, l.port, tlsPaths(l.tlsDir).caLocation)).ok;
  return {
    service: 'kafka-secure',
    address: `${HOST}:${l.port}`,
    answering,
    managedBy: pid !== undefined ? 'sluice' : 'system',
    ...(pid !== undefined ? { pid } : {}),
  };
}
