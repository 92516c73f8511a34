/**
 * One place for how Sluice reaches a Kafka cluster: its address and its security (SASL and TLS),
 * given once and used by every client Sluice makes on it — the direct source's consumer and admin
 * client, the sinks' producers and admin clients, both offset stores, the CLI.
 *
 * A client given no `cluster` uses the process's: the address from env `KAFKA_BOOTSTRAP` (else
 * 127.0.0.1:9092) and the librdkafka properties of the file that env `SLUICE_KAFKA_CONFIG` names
 * (`key=value` lines: `security.protocol`, `sasl.*`, `ssl.*`, ...). Secrets therefore never have to
 * be written in code or passed on a command line.
 */
import { readFileSync } from 'node:fs';
import { InvalidOptionError } from '../core/errors.js';
import {
  DEFAULT_BOOTSTRAP,
  isPlainObject,
  validateBootstrapServers,
  type ClientConfig,
  type ConfigValue,
} from './options.js';
import { redactConfig } from './rdkafka.js';

/** The SASL mechanisms Sluice configures; librdkafka does the rest. */
export type SaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512' | 'OAUTHBEARER';

/** A user name and password: PLAIN (e.g. a managed cloud's API key and secret) or SCRAM. */
export interface SaslPasswordOptions {
  readonly mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
  readonly username: string;
  readonly password: string;
}

/** OAUTHBEARER tokens from an OpenID Connect token endpoint (client credentials grant). */
export interface SaslOAuthBearerOptions {
  readonly mechanism: 'OAUTHBEARER';
  readonly tokenEndpointUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Space-separated scopes to ask for. */
  readonly scope?: string;
  /** SASL extensions, `key=value` pairs separated by commas (e.g. a logical cluster id). */
  readonly extensions?: string;
}

/** TLS: the CA to trust and, for mutual TLS, this client's certificate and key (PEM files). */
export interface TlsOptions {
  /** The CA certificate(s) that signed the brokers' certificates. Default: the system's CAs. */
  readonly caLocation?: string;
  /** This client's certificate, for clusters that authenticate clients by certificate. */
  readonly certificateLocation?: string;
  /** The key of `certificateLocation`. */
  readonly keyLocation?: string;
  /** The password of an encrypted `keyLocation`. */
  readonly keyPassword?: string;
  /** Check that a broker's certificate names the host connected to (default true). */
  readonly verifyHostname?: boolean;
}

/** What a cluster is: where it is and how to connect to it. */
export interface KafkaClusterOptions {
  /** `host:port[,host:port...]`. Default: env `KAFKA_BOOTSTRAP`, else the config file's, else 127.0.0.1:9092. */
  readonly bootstrapServers?: string;
  /** SASL authentication (with `tls`: SASL_SSL; without: SASL_PLAINTEXT). */
  readonly sasl?: SaslPasswordOptions | SaslOAuthBearerOptions;
  /** TLS encryption (and mutual TLS with a certificate). `true`: TLS with the system's CAs. */
  readonly tls?: TlsOptions | boolean;
  /**
   * Further librdkafka properties every client on this cluster needs (e.g. `client.rack`,
   * `socket.keepalive.enable`), also any security property not covered above.
   */
  readonly config?: ClientConfig;
}

/** The options of every Kafka source, sink and store that say which cluster it uses. */
export interface ClusterOption {
  /**
   * The cluster: its address and security, given once for every client on it (see
   * {@link kafkaCluster}). Default: the process's cluster — env `KAFKA_BOOTSTRAP` (else
   * 127.0.0.1:9092) with the properties of the file env `SLUICE_KAFKA_CONFIG` names.
   */
  readonly cluster?: KafkaCluster | KafkaClusterOptions;
  /** The address alone, on the process's cluster settings. Not with `cluster`. */
  readonly bootstrapServers?: string;
}

/**
 * A cluster, as every Sluice client on it connects: its address and the librdkafka properties
 * (security) each of their clients gets. Made by {@link kafkaCluster}.
 */
export interface KafkaCluster {
  readonly bootstrapServers: string;
  /** The properties every client on the cluster gets. Holds secrets: print {@link KafkaCluster.describe}. */
  readonly config: ClientConfig;
  /** The settings with their secrets redacted, for plans and logs. */
  describe(): Record<string, unknown>;
}

const CLUSTER = Symbol('sluice.kafkaCluster');

/**
 * The librdkafka configuration of one client on `cluster`: the client's `defaults`, then the
 * cluster's properties (security), then the caller's own properties (`user`, e.g. `consumerConfig`),
 * then the address and the properties the client sets itself (`own`), which nothing overrides
 * (their keys are refused by `validateClientConfig` with the client's owned keys).
 */
export function librdkafkaConfig(
  cluster: KafkaCluster,
  defaults: ClientConfig,
  user: ClientConfig | undefined,
  own: ClientConfig = {},
): Record<string, ConfigValue> {
  return { ...defaults, ...cluster.config, ...user, 'bootstrap.servers': cluster.bootstrapServers, ...own };
}

/** Keys the cluster's `config` may not hold: each client sets them itself. */
const NOT_CLUSTER_KEYS = new Set([
  'bootstrap.servers',
  'metadata.broker.list',
  'group.id',
  'transactional.id',
  'client.id',
  'enable.auto.commit',
  'isolation.level',
]);

/**
 * The cluster a Kafka source, sink or store connects to, with its security given once.
 *
 * @example
 * ```ts
 * import { kafkaCluster, createDirectStream, KafkaTransactionalStore, KafkaTransactionalSink } from 'sluice/kafka';
 * const cluster = kafkaCluster({
 *   bootstrapServers: 'broker-1.example.com:9094',
 *   sasl: { mechanism: 'SCRAM-SHA-512', username: 'etl', password: process.env.KAFKA_PASSWORD! },
 *   tls: { caLocation: '/etc/kafka/ca.pem' },
 * });
 * const store = new KafkaTransactionalStore({ cluster });
 * createDirectStream(ctx, { cluster, topics: ['raw'] })
 *   .map((r) => r.value!.trim())
 *   .writeTo(new KafkaTransactionalSink<string>({ cluster, topic: 'clean', store }));
 * ```
 */
export function kafkaCluster(given: KafkaClusterOptions = {}): KafkaCluster {
  if (!isPlainObject(given)) {
    throw new InvalidOptionError('cluster', "an object such as { bootstrapServers: 'host:9092' }", given);
  }
  // Checked below: the declared type is what a caller should pass, not what it did.
  const options = given as KafkaClusterOptions;
  for (const k of Object.keys(options)) {
    if (!['bootstrapServers', 'sasl', 'tls', 'config'].includes(k)) {
      throw new InvalidOptionError(`cluster.${k}`, 'one of bootstrapServers, sasl, tls, config', '[set]');
    }
  }
  validateBootstrapServers(options.bootstrapServers);
  const config: Record<string, ConfigValue> = { ...validClusterConfig('cluster.config', options.config) };
  Object.assign(config, saslConfig(options.sasl), tlsConfig(options.tls));
  if (options.sasl || options.tls) {
    config['security.protocol'] = `${options.sasl ? 'sasl_' : ''}${options.tls ? 'ssl' : 'plaintext'}`;
  }
  return makeCluster(
    options.bootstrapServers ?? process.env.KAFKA_BOOTSTRAP ?? DEFAULT_BOOTSTRAP,
    Object.freeze(config),
  );
}

/**
 * The cluster of a client given no `cluster`: env `KAFKA_BOOTSTRAP` (or `bootstrapServers`, the
 * client's own option) for the address, and the properties of the `SLUICE_KAFKA_CONFIG` file.
 */
export function defaultCluster(bootstrapServers?: string): KafkaCluster {
  const file = process.env.SLUICE_KAFKA_CONFIG;
  const fromFile = file ? readClusterFile(file) : {};
  const { 'bootstrap.servers': fileAddress, ...config } = fromFile;
  return makeCluster(
    bootstrapServers ?? process.env.KAFKA_BOOTSTRAP ?? fileAddress ?? DEFAULT_BOOTSTRAP,
    Object.freeze(validClusterConfig(`SLUICE_KAFKA_CONFIG (${file})`, config)),
  );
}

/**
 * The cluster of a client's options: `cluster` (a {@link kafkaCluster} or its options), else
 * {@link defaultCluster} at `bootstrapServers`. Giving both is refused: the address belongs to the
 * cluster.
 */
export function resolveCluster(options: {
  readonly cluster?: KafkaCluster | KafkaClusterOptions;
  readonly bootstrapServers?: string;
}): KafkaCluster {
  const { cluster, bootstrapServers } = options;
  if (cluster === undefined) return defaultCluster(bootstrapServers);
  if (bootstrapServers !== undefined) {
    throw new InvalidOptionError(
      'bootstrapServers',
      "nothing when 'cluster' is given: the address is the cluster's (cluster.bootstrapServers)",
      bootstrapServers,
    );
  }
  return isKafkaCluster(cluster) ? cluster : kafkaCluster(cluster);
}

export function isKafkaCluster(v: unknown): v is KafkaCluster {
  return typeof v === 'object' && v !== null && (v as { [CLUSTER]?: boolean })[CLUSTER] === true;
}

/** Checks a `cluster` option (a made cluster, or options for one). */
export function validateClusterOption(value: unknown): void {
  if (value === undefined || isKafkaCluster(value)) return;
  kafkaCluster(value as KafkaClusterOptions);
}

function makeCluster(bootstrapServers: string, config: ClientConfig): KafkaCluster {
  validateBootstrapServers(bootstrapServers);
  return Object.freeze({
    [CLUSTER]: true,
    bootstrapServers,
    config,
    describe: () => ({
      bootstrapServers,
      ...(Object.keys(config).length ? { config: redactConfig({ ...config }) } : {}),
    }),
  });
}

function validClusterConfig(option: string, config: unknown): ClientConfig {
  if (config === undefined) return {};
  if (!isPlainObject(config))
    throw new InvalidOptionError(option, 'an object of librdkafka properties', config);
  for (const [k, v] of Object.entries(config)) {
    if (NOT_CLUSTER_KEYS.has(k)) {
      throw new InvalidOptionError(
        `${option}: ${k}`,
        'connection and security properties only: each client sets this one itself',
        '[set]',
      );
    }
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw new InvalidOptionError(`${option}: ${k}`, 'a string, number or boolean', typeof v);
    }
  }
  return config as ClientConfig;
}

function nonEmpty(option: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0)
    throw new InvalidOptionError(option, 'a non-empty string', v === undefined ? v : '[set]');
  return v;
}

function saslConfig(sasl: KafkaClusterOptions['sasl']): Record<string, ConfigValue> {
  if (sasl === undefined) return {};
  if (!isPlainObject(sasl))
    throw new InvalidOptionError(
      'cluster.sasl',
      '{ mechanism, username, password } or { mechanism: OAUTHBEARER, ... }',
      sasl,
    );
  const s = sasl as unknown as Record<string, unknown>;
  switch (s.mechanism) {
    case 'PLAIN':
    case 'SCRAM-SHA-256':
    case 'SCRAM-SHA-512':
      return {
        'sasl.mechanisms': s.mechanism,
        'sasl.username': nonEmpty('cluster.sasl.username', s.username),
        'sasl.password': nonEmpty('cluster.sasl.password', s.password),
      };
    case 'OAUTHBEARER': {
      const out: Record<string, ConfigValue> = {
        'sasl.mechanisms': 'OAUTHBEARER',
        'sasl.oauthbearer.method': 'oidc',
        'sasl.oauthbearer.token.endpoint.url': nonEmpty('cluster.sasl.tokenEndpointUrl', s.tokenEndpointUrl),
        'sasl.oauthbearer.client.id': nonEmpty('cluster.sasl.clientId', s.clientId),
        'sasl.oauthbearer.client.secret': nonEmpty('cluster.sasl.clientSecret', s.clientSecret),
      };
      if (s.scope !== undefined) out['sasl.oauthbearer.scope'] = nonEmpty('cluster.sasl.scope', s.scope);
      if (s.extensions !== undefined) {
        out['sasl.oauthbearer.extensions'] = nonEmpty('cluster.sasl.extensions', s.extensions);
      }
      return out;
    }
    default:
      throw new InvalidOptionError(
        'cluster.sasl.mechanism',
        "'PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512' or 'OAUTHBEARER'",
        s.mechanism,
      );
  }
}

function tlsConfig(tls: KafkaClusterOptions['tls']): Record<string, ConfigValue> {
  if (tls === undefined || tls === false || tls === true) return {};
  if (!isPlainObject(tls))
    throw new InvalidOptionError(
      'cluster.tls',
      'true, or { caLocation?, certificateLocation?, keyLocation?, keyPassword?, verifyHostname? }',
      tls,
    );
  const t = tls as TlsOptions;
  const out: Record<string, ConfigValue> = {};
  if (t.caLocation !== undefined) out['ssl.ca.location'] = nonEmpty('cluster.tls.caLocation', t.caLocation);
  if ((t.certificateLocation === undefined) !== (t.keyLocation === undefined)) {
    throw new InvalidOptionError(
      'cluster.tls',
      'certificateLocation and keyLocation together (mutual TLS), or neither',
      '[one of them]',
    );
  }
  if (t.certificateLocation !== undefined) {
    out['ssl.certificate.location'] = nonEmpty('cluster.tls.certificateLocation', t.certificateLocation);
    out['ssl.key.location'] = nonEmpty('cluster.tls.keyLocation', t.keyLocation);
  }
  if (t.keyPassword !== undefined)
    out['ssl.key.password'] = nonEmpty('cluster.tls.keyPassword', t.keyPassword);
  if (t.verifyHostname === false) out['ssl.endpoint.identification.algorithm'] = 'none';
  return out;
}

/**
 * Reads a `key=value` properties file of librdkafka properties (`#` and `!` start comments; blank
 * lines are skipped). The values are never shown in an error: they may be secrets.
 */
export function readClusterFile(file: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidOptionError(
      'SLUICE_KAFKA_CONFIG',
      `a readable file of librdkafka properties (key=value lines): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      file,
    );
  }
  const out: Record<string, string> = {};
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) {
      throw new InvalidOptionError(
        `SLUICE_KAFKA_CONFIG (${file}) line ${i + 1}`,
        'key=value',
        '[not key=value]',
      );
    }
    out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}
