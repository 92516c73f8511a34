/**
 * Kafka's own tools against the secured test broker (src/services/secure-kafka.ts), as its admin:
 * ACLs (AclCommand) and SCRAM users (ConfigCommand), and the librdkafka settings of its test clients.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import {
  SCRAM_MECHANISMS,
  type SaslMechanism,
  type SecureKafkaHandle,
  type SecureKafkaUser,
  type SecureKafkaUserName,
} from './secure-kafka.js';
import { lastLines, runCommand } from './util.js';

// ------------------------------------------------------------------ librdkafka client settings for tests

/**
 * librdkafka properties for a SASL_SSL client of the secured broker: `bootstrap.servers`,
 * `security.protocol`, `sasl.mechanisms`, `sasl.username`, `sasl.password`, `ssl.ca.location`.
 * `user`: one of the handle's users (default admin) or any `{ username, password }`.
 */
export function saslSslClientConfig(
  h: SecureKafkaHandle,
  user: SecureKafkaUserName | { username: string; password: string } = 'admin',
  mechanism: SaslMechanism = 'SCRAM-SHA-512',
): Record<string, string> {
  const u = typeof user === 'string' ? h.users[user] : user;
  return {
    'bootstrap.servers': h.bootstrapServers,
    'security.protocol': 'SASL_SSL',
    'sasl.mechanisms': mechanism,
    'sasl.username': u.username,
    'sasl.password': u.password,
    'ssl.ca.location': h.tls.caLocation,
  };
}

/** librdkafka properties for a mutual-TLS client (principal {@link SecureKafkaTls.clientPrincipal}). */
export function mtlsClientConfig(h: SecureKafkaHandle): Record<string, string> {
  return {
    'bootstrap.servers': h.mtlsBootstrapServers,
    'security.protocol': 'SSL',
    'ssl.ca.location': h.tls.caLocation,
    'ssl.certificate.location': h.tls.clientCertificateLocation,
    'ssl.key.location': h.tls.clientKeyLocation,
  };
}

// ------------------------------------------------------------------ Kafka's tools: ACLs and users

/**
 * Runs one of Kafka's command-line tools (main class from the Kafka jars) against the secured broker
 * as admin (`--bootstrap-server` and `--command-config` are added). Returns its output.
 * @throws Error with the tool's output when it exits non-zero or runs longer than `timeoutMs` (90 s).
 */
export async function runSecureKafkaTool(
  h: SecureKafkaHandle,
  mainClass: string,
  args: string[],
  timeoutMs = 90_000,
): Promise<string> {
  const dir = path.dirname(h.adminConfigFile);
  const r = await runCommand(
    'java',
    [
      '-Xmx128m',
      '-XX:TieredStopAtLevel=1', // a short-lived tool: start fast, don't optimise
      '-XX:+UseSerialGC',
      `-Dlog4j2.configurationFile=${path.join(dir, 'tools-log4j2.xml')}`,
      '-cp',
      `${h.libDir}/*`,
      mainClass,
      '--bootstrap-server',
      h.bootstrapServers,
      '--command-config',
      h.adminConfigFile,
      ...args,
    ],
    { timeoutMs, cwd: dir },
  );
  if (r.code !== 0) {
    const shown = r.output.split('\n').filter((s) => !/^\s+at /.test(s));
    throw new Error(
      `${mainClass.split('.').pop()} ${args.join(' ')} failed (${r.error ?? `exit ${r.code}`}):\n${lastLines(shown.join('\n'), 15)}`,
    );
  }
  return r.output;
}

export type AclResourceType =
  'topic' | 'group' | 'cluster' | 'transactional-id' | 'delegation-token' | 'user';

/** AclCommand's operation names. */
export type AclOperation =
  | 'All'
  | 'Read'
  | 'Write'
  | 'Create'
  | 'Delete'
  | 'Alter'
  | 'Describe'
  | 'ClusterAction'
  | 'DescribeConfigs'
  | 'AlterConfigs'
  | 'IdempotentWrite'
  | 'CreateTokens'
  | 'DescribeTokens'
  | 'TwoPhaseCommit';

export interface AclSpec {
  resourceType: AclResourceType;
  /** The resource name (a topic, group, transactional id, ...; '*' for all). Ignored for 'cluster'. */
  name?: string;
  /** 'literal' (default) or 'prefixed' (every name starting with `name`). */
  patternType?: 'literal' | 'prefixed';
  /** Must all be valid for the resource type (e.g. a group has Read, Describe, Delete, DescribeConfigs, AlterConfigs, All). */
  operations: AclOperation[];
  /** Default 'allow'. Deny wins over allow. */
  permission?: 'allow' | 'deny';
  /** Client host the ACL applies to. Default '*'. */
  host?: string;
}

/** One ACL as AclCommand lists it. */
export interface AclEntry {
  principal: string;
  host: string;
  /** Upper case, e.g. 'READ', 'IDEMPOTENT_WRITE'. */
  operation: string;
  permission: 'ALLOW' | 'DENY';
  /** Upper case, e.g. 'TOPIC', 'GROUP', 'CLUSTER', 'TRANSACTIONAL_ID'. */
  resourceType: string;
  name: string;
  patternType: 'LITERAL' | 'PREFIXED';
}

const ACL_CLASS = 'org.apache.kafka.tools.AclCommand';

/** 'alice' -> 'User:alice'; 'User:x' unchanged. */
function principalOf(p: string | SecureKafkaUser): string {
  const s = typeof p === 'string' ? p : p.principal;
  return s.includes(':') ? s : `User:${s}`;
}

function resourceArgs(spec: AclSpec): string[] {
  if (spec.resourceType === 'cluster') return ['--cluster'];
  if (spec.name === undefined || spec.name === '') {
    throw new Error(`an ACL on a ${spec.resourceType} needs a name ('*' for all)`);
  }
  const flag = spec.resourceType === 'user' ? '--user-principal' : `--${spec.resourceType}`;
  return [flag, spec.name];
}

/** Specs that differ only in their resource go into one AclCommand call (one JVM); others get their own. */
function aclCalls(action: '--add' | '--remove', principal: string, specs: AclSpec[]): string[][] {
  const groups = new Map<string, { head: string[]; resources: string[] }>();
  for (const spec of specs) {
    if (spec.operations.length === 0) throw new Error('an ACL spec needs at least one operation');
    const permission = spec.permission ?? 'allow';
    const ops = [...new Set(spec.operations)].sort();
    const head = [
      action,
      `--${permission}-principal`,
      principal,
      `--${permission}-host`,
      spec.host ?? '*',
      '--resource-pattern-type',
      spec.patternType ?? 'literal',
      ...ops.flatMap((o) => ['--operation', o]),
      ...(action === '--remove' ? ['--force'] : []),
    ];
    const key = head.join('\0');
    const g = groups.get(key) ?? { head, resources: [] };
    g.resources.push(...resourceArgs(spec));
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => [...g.head, ...g.resources]);
}

/**
 * Gives `principal` ('alice', 'User:alice' or a handle user) the ACLs of `specs`, with Kafka's own
 * AclCommand as admin (one JVM per distinct operation list: 2.5-5 s each). The broker applies them when
 * the metadata change is published, a moment after this returns: a client that checks at once may
 * still be refused for a few milliseconds.
 */
export async function grantAcls(
  h: SecureKafkaHandle,
  principal: string | SecureKafkaUser,
  specs: AclSpec[],
): Promise<void> {
  for (const args of aclCalls('--add', principalOf(principal), specs))
    await runSecureKafkaTool(h, ACL_CLASS, args);
}

/** Removes exactly these ACLs of `principal` (the same specs as given to {@link grantAcls}). */
export async function revokeAcls(
  h: SecureKafkaHandle,
  principal: string | SecureKafkaUser,
  specs: AclSpec[],
): Promise<void> {
  for (const args of aclCalls('--remove', principalOf(principal), specs))
    await runSecureKafkaTool(h, ACL_CLASS, args);
}

/**
 * The ACLs on the broker, optionally only those of `principal` and/or of one resource (`name` with
 * `resourceType`; matched exactly, any pattern type).
 */
export async function listAcls(
  h: SecureKafkaHandle,
  filter: { principal?: string | SecureKafkaUser; resourceType?: AclResourceType; name?: string } = {},
): Promise<AclEntry[]> {
  const args = ['--list'];
  if (filter.principal !== undefined) args.push('--principal', principalOf(filter.principal));
  if (filter.resourceType !== undefined) {
    args.push(...resourceArgs({ resourceType: filter.resourceType, name: filter.name, operations: ['All'] }));
    args.push('--resource-pattern-type', 'any');
  }
  return parseAclList(await runSecureKafkaTool(h, ACL_CLASS, args));
}

/** Parses AclCommand --list output ("Current ACLs for resource `ResourcePattern(...)`:" + one line per ACL). */
export function parseAclList(output: string): AclEntry[] {
  const entries: AclEntry[] = [];
  let resource: Pick<AclEntry, 'resourceType' | 'name' | 'patternType'> | undefined;
  for (const line of output.split('\n')) {
    const r = /ResourcePattern\(resourceType=([A-Z_]+), name=(.*), patternType=(LITERAL|PREFIXED)\)/.exec(
      line,
    );
    if (r) {
      resource = { resourceType: r[1]!, name: r[2]!, patternType: r[3] as AclEntry['patternType'] };
      continue;
    }
    const a = /\(principal=(.*), host=(.*), operation=([A-Z_]+), permissionType=(ALLOW|DENY)\)/.exec(line);
    if (a && resource) {
      entries.push({
        principal: a[1]!,
        host: a[2]!,
        operation: a[3]!,
        permission: a[4] as AclEntry['permission'],
        ...resource,
      });
    }
  }
  return entries;
}

/**
 * Creates (or changes the password of) a SCRAM user at runtime with Kafka's ConfigCommand, one call
 * per mechanism (default both SCRAM mechanisms). PLAIN users cannot be added at runtime (they are the
 * broker's JAAS config). The user has no ACLs until {@link grantAcls}. Returns it as a handle user.
 */
export async function addScramUser(
  h: SecureKafkaHandle,
  username: string,
  password: string = randomBytes(12).toString('hex'),
  mechanisms: readonly ('SCRAM-SHA-512' | 'SCRAM-SHA-256')[] = SCRAM_MECHANISMS,
): Promise<SecureKafkaUser> {
  if (!/^[A-Za-z0-9._-]+$/.test(username) || /[,\]=]/.test(password)) {
    throw new Error('addScramUser: use a user name of letters, digits, . _ - and a password without , ] =');
  }
  for (const m of mechanisms) {
    await runSecureKafkaTool(h, 'kafka.admin.ConfigCommand', [
      '--alter',
      '--entity-type',
      'users',
      '--entity-name',
      username,
      '--add-config',
      `${m}=[password=${password}]`,
    ]);
  }
  return { username, password, principal: `User:${username}` };
}
