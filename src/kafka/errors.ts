/**
 * The errors of a Kafka cluster's security: a rejected login ({@link KafkaAuthenticationError}) and
 * missing ACLs ({@link KafkaAuthorizationError}). Neither is retried: both stay until someone
 * changes the credentials or the ACLs. Also how a librdkafka error becomes one of them, given who
 * the client is and what the failed call needed.
 */
import type { MissingPermission } from '../core/access.js';
import { SluiceError } from '../core/errors.js';
import type { ConfigValue } from './options.js';
import {
  authorizationFailure,
  describeError,
  isAuthenticationFailure,
  type KafkaResourceType,
} from './rdkafka.js';

/** Who a client is on its cluster, as far as its configuration tells (never its secrets). */
export interface KafkaIdentity {
  readonly bootstrapServers: string;
  /** librdkafka `security.protocol`, lower case (e.g. `sasl_ssl`); undefined: plaintext. */
  readonly securityProtocol?: string;
  /** The SASL mechanism (e.g. `SCRAM-SHA-512`), when SASL is used. */
  readonly mechanism?: string;
  /** The SASL user name (PLAIN, SCRAM), when there is one. */
  readonly username?: string;
}

/** Who a client with this librdkafka configuration is: read from its address and security properties. */
export function identityOf(config: Readonly<Record<string, ConfigValue>>): KafkaIdentity {
  const str = (k: string) =>
    typeof config[k] === 'string' && config[k] !== '' ? String(config[k]) : undefined;
  const protocol = str('security.protocol')?.toLowerCase();
  const sasl = protocol?.startsWith('sasl_') === true;
  const mechanism = sasl ? (str('sasl.mechanisms') ?? str('sasl.mechanism') ?? 'GSSAPI') : undefined;
  const username =
    sasl && mechanism !== 'OAUTHBEARER' && mechanism !== 'GSSAPI' ? str('sasl.username') : undefined;
  return {
    bootstrapServers: str('bootstrap.servers') ?? str('metadata.broker.list') ?? '(unknown)',
    ...(protocol ? { securityProtocol: protocol } : {}),
    ...(mechanism ? { mechanism } : {}),
    ...(username ? { username } : {}),
  };
}

/**
 * The principal Kafka gives a client: `User:<name>` for a SASL PLAIN or SCRAM user (Kafka's default
 * principal builder). Unknown (undefined) for mutual TLS, OAUTHBEARER and Kerberos, whose principal
 * comes from the certificate, the token or the ticket, and for plaintext (`User:ANONYMOUS`, unless
 * the cluster maps it).
 */
export function principalOf(identity: KafkaIdentity): string | undefined {
  return identity.username !== undefined ? `User:${identity.username}` : undefined;
}

/** The client's login was refused: wrong user name or password, a mechanism the cluster does not take, a CA that does not verify the brokers, a client certificate it does not accept. */
export class KafkaAuthenticationError extends SluiceError {
  static readonly code = 'SLUICE_KAFKA_AUTH_FAILED';
  readonly code = KafkaAuthenticationError.code;
  /** The SASL user name, when there is one (never the password). */
  readonly username: string | undefined;
  /** The SASL mechanism, when SASL is used. */
  readonly mechanism: string | undefined;
  /** Where it failed: the SASL login, or the TLS handshake before it. */
  readonly stage: 'sasl' | 'tls';

  constructor(
    readonly bootstrapServers: string,
    /** The client's reason, e.g. librdkafka's "SASL authentication error: Authentication failed ...". */
    readonly reason: string,
    details: { username?: string; mechanism?: string; cause?: unknown } = {},
  ) {
    const stage = /SASL/i.test(reason) || !/SSL|TLS|certificate/i.test(reason) ? 'sasl' : 'tls';
    const who =
      stage === 'tls'
        ? 'the TLS handshake failed'
        : `the login${details.username !== undefined ? ` of user '${details.username}'` : ''}${
            details.mechanism !== undefined ? ` (SASL ${details.mechanism})` : ''
          } was refused`;
    super(
      `Kafka at ${bootstrapServers}: ${who}: ${reason}`,
      stage === 'tls'
        ? "Check the CA that verifies the brokers' certificates (tls.caLocation of kafkaCluster(), or ssl.ca.location in the SLUICE_KAFKA_CONFIG file) and, for mutual TLS, the client certificate and key (tls.certificateLocation and tls.keyLocation). Not retried: it fails the same way until the settings change"
        : 'Check the user name, the password and the SASL mechanism (the sasl option of kafkaCluster(), or the sasl.* properties of the SLUICE_KAFKA_CONFIG file), and that the user exists on the cluster for that mechanism. Not retried: it fails the same way until the settings change',
      { cause: details.cause },
    );
    this.username = details.username;
    this.mechanism = details.mechanism;
    this.stage = stage;
  }
}

/**
 * The client's principal lacks ACLs: `missing` lists every permission that was refused, or, from
 * the access check at start, every one the pipeline needs and lacks across its inputs and outputs.
 */
export class KafkaAuthorizationError extends SluiceError {
  static readonly code = 'SLUICE_KAFKA_NOT_AUTHORIZED';
  readonly code = KafkaAuthorizationError.code;
  /** The principal refused (of the first missing permission), when known: e.g. `User:bob`. */
  readonly principal: string | undefined;

  constructor(
    readonly missing: readonly MissingPermission[],
    details: { reason?: string; cause?: unknown } = {},
  ) {
    super(
      `${describeMissing(missing)}${details.reason !== undefined ? ` (${details.reason})` : ''}`,
      aclHint(missing),
      { cause: details.cause },
    );
    this.principal = missing.find((m) => m.principal !== undefined)?.principal;
  }
}

/** "Principal User:bob may not: Read topic 'orders', Describe group 'etl'" (one clause per principal). */
function describeMissing(missing: readonly MissingPermission[]): string {
  if (missing.length === 0) return 'Kafka refused an operation: not authorized';
  const byPrincipal = new Map<string | undefined, MissingPermission[]>();
  for (const m of missing) {
    const list = byPrincipal.get(m.principal) ?? [];
    list.push(m);
    byPrincipal.set(m.principal, list);
  }
  return [...byPrincipal]
    .map(([principal, list], i) => {
      const who = principal !== undefined ? `Principal ${principal}` : "This client's principal";
      const clause = `${who} may not: ${list.map(describePermission).join(', ')}`;
      return i === 0 ? clause : clause.charAt(0).toLowerCase() + clause.slice(1);
    })
    .join('; ');
}

function describePermission(m: MissingPermission): string {
  const what =
    m.resourceType === 'cluster'
      ? `${m.operation} the cluster`
      : `${m.operation} ${m.resourceType} '${m.resource}'`;
  return m.system === 'kafka' ? what : `${what} (${m.system})`;
}

const RESOURCE_FLAG: Readonly<Record<string, string>> = {
  topic: '--topic',
  group: '--group',
  'transactional-id': '--transactional-id',
};

function shellWord(s: string): string {
  return /^[A-Za-z0-9._:@=\/-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** One `kafka-acls --add` line per missing Kafka permission. */
function aclHint(missing: readonly MissingPermission[]): string {
  const kafka = missing.filter((m) => m.system === 'kafka');
  const other = missing.filter((m) => m.system !== 'kafka');
  const lines = kafka.map((m) => {
    const resource =
      m.resourceType === 'cluster'
        ? '--cluster'
        : `${RESOURCE_FLAG[m.resourceType] ?? `--${m.resourceType}`} ${shellWord(m.resource)}`;
    const operation = /^[A-Z][A-Za-z]+$/.test(m.operation) ? m.operation : '<operation>';
    return `  kafka-acls${m.location !== undefined ? ` --bootstrap-server ${m.location}` : ''} --add --allow-principal ${shellWord(m.principal ?? 'User:<principal>')} --operation ${operation} ${resource}`;
  });
  const parts: string[] = [];
  if (lines.length > 0) {
    parts.push(
      `A cluster administrator can add the ACLs (kafka-acls also needs --command-config with the administrator's client properties on a secured cluster):\n${lines.join('\n')}`,
    );
  }
  if (other.length > 0)
    parts.push(`Grant the other permissions in their systems: ${other.map(describePermission).join(', ')}`);
  if (parts.length === 0) return 'Check the ACLs of the principal this client connects as';
  return `${parts.join('\n')}\nNot retried: it fails the same way until the ACLs change`;
}

/** One permission a Kafka call needs. */
export interface KafkaPermission {
  readonly operation: string;
  readonly resourceType: KafkaResourceType;
  readonly resource: string;
}

/** The permissions as missing ones of `identity`'s principal. */
export function missingOf(identity: KafkaIdentity, needs: readonly KafkaPermission[]): MissingPermission[] {
  const principal = principalOf(identity);
  return needs.map((n) => ({
    system: 'kafka',
    operation: n.operation,
    resourceType: n.resourceType,
    resource: n.resource,
    ...(principal !== undefined ? { principal } : {}),
    location: identity.bootstrapServers,
  }));
}

/** The typed error of a refused login, with the client's reason. */
export function authenticationError(
  identity: KafkaIdentity,
  reason: string,
  cause?: unknown,
): KafkaAuthenticationError {
  return new KafkaAuthenticationError(identity.bootstrapServers, reason, {
    ...(identity.username !== undefined ? { username: identity.username } : {}),
    ...(identity.mechanism !== undefined ? { mechanism: identity.mechanism } : {}),
    cause,
  });
}

/**
 * `e` as a typed security error, if it is a security failure: a refused login becomes
 * {@link KafkaAuthenticationError}; a missing ACL, {@link KafkaAuthorizationError} naming the
 * permissions of `needs` on the refused kind of resource (the call's needs; others are left out:
 * the error code names the kind of resource only). Undefined for any other error.
 */
export function securityError(
  e: unknown,
  identity: KafkaIdentity,
  needs: readonly KafkaPermission[] = [],
): KafkaAuthenticationError | KafkaAuthorizationError | undefined {
  if (e instanceof KafkaAuthenticationError || e instanceof KafkaAuthorizationError) return e;
  if (isAuthenticationFailure(e)) return authenticationError(identity, describeError(e), e);
  const type = authorizationFailure(e);
  if (type === undefined) return undefined;
  const refused = needs.filter((n) => n.resourceType === type);
  return new KafkaAuthorizationError(
    missingOf(
      identity,
      refused.length > 0
        ? refused
        : [
            {
              operation: 'access',
              resourceType: type,
              resource: type === 'cluster' ? 'kafka-cluster' : '(unknown)',
            },
          ],
    ),
    { reason: describeError(e), cause: e },
  );
}
