/**
 * How librdkafka's security failures are classified and reported (no broker: the errors and log
 * lines are those the secured test broker gave, see the comments in src/kafka/rdkafka.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SluiceError } from '../../src/core/errors.js';
import { AuthFailureWatch } from '../../src/kafka/auth-watch.js';
import {
  KafkaAuthenticationError,
  KafkaAuthorizationError,
  identityOf,
  missingOf,
  securityError,
} from '../../src/kafka/errors.js';
import * as kafka from '../../src/kafka/index.js';
import {
  CODES,
  authenticationLogReason,
  authorizationFailure,
  isAuthenticationFailure,
  isSecurityFailure,
  isTransient,
  isUnreachable,
} from '../../src/kafka/rdkafka.js';

const E = CODES.ERRORS;
const SCRAM_LOG =
  '[thrd:sasl_ssl://127.0.0.1:9094/bootstrap]: sasl_ssl://127.0.0.1:9094/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 345ms in state AUTH_REQ)';
const SCRAM_REASON =
  'SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512';
const bob = identityOf({
  'bootstrap.servers': 'broker:9094',
  'security.protocol': 'SASL_SSL',
  'sasl.mechanisms': 'SCRAM-SHA-512',
  'sasl.username': 'bob',
  'sasl.password': 'secret-password',
});

describe('classification of security failures', () => {
  it('authentication: the codes, and the event.error messages whose code the binding drops', () => {
    for (const code of [
      E.ERR__AUTHENTICATION,
      E.ERR_SASL_AUTHENTICATION_FAILED,
      E.ERR_UNSUPPORTED_SASL_MECHANISM,
      E.ERR_ILLEGAL_SASL_STATE,
      E.ERR__SSL,
    ]) {
      assert.ok(isAuthenticationFailure({ code, message: 'x' }), String(code));
    }
    assert.ok(isAuthenticationFailure({ code: -1, message: 'authentication failure' }));
    assert.ok(isAuthenticationFailure({ code: -1, message: 'ssl error' }));
    assert.ok(!isAuthenticationFailure({ code: -1, message: 'all broker connections are down' }));
    assert.ok(!isAuthenticationFailure({ code: E.ERR__TRANSPORT, message: 'broker transport failure' }));
  });

  it('authorization: the resource type of each code', () => {
    assert.equal(authorizationFailure({ code: 29 }), 'topic');
    assert.equal(authorizationFailure({ code: 30 }), 'group');
    assert.equal(authorizationFailure({ code: 31 }), 'cluster');
    assert.equal(authorizationFailure({ code: 53 }), 'transactional-id');
    assert.equal(authorizationFailure({ code: E.ERR__TRANSPORT }), undefined);
    // event.error drops the code (-1): an idempotent producer that may write no topic.
    assert.equal(authorizationFailure({ code: -1, message: 'cluster authorization failed' }), 'cluster');
    assert.equal(
      authorizationFailure({ code: -1, message: 'transactional id authorization failed' }),
      'transactional-id',
    );
    assert.equal(authorizationFailure({ code: -1, message: 'all broker connections are down' }), undefined);
  });

  it('security failures are never transient nor "unreachable"; network faults still are', () => {
    for (const code of [29, 30, 31, 53, 58, 33, 34, -169, -181]) {
      assert.ok(isSecurityFailure({ code }), String(code));
      assert.ok(!isTransient({ code }), String(code));
      assert.ok(!isUnreachable({ code }), String(code));
    }
    assert.ok(isTransient({ code: E.ERR__TRANSPORT }));
    assert.ok(isTransient({ code: E.ERR_LEADER_NOT_AVAILABLE }));
  });

  it("librdkafka's FAIL log lines give the reason; a broker going away mid-handshake is no refusal", () => {
    assert.equal(authenticationLogReason({ message: SCRAM_LOG }), SCRAM_REASON);
    assert.equal(
      authenticationLogReason({
        message:
          '[thrd:ssl://127.0.0.1:9096/bootstrap]: ssl://127.0.0.1:9096/bootstrap: Receive failed: error:0A000412:SSL routines::sslv3 alert bad certificate: SSL alert number 42 (after 0ms in state APIVERSION_QUERY, 1 identical error(s) suppressed)',
      }),
      'Receive failed: error:0A000412:SSL routines::sslv3 alert bad certificate: SSL alert number 42',
    );
    assert.match(
      authenticationLogReason({
        message:
          '[thrd:sasl_ssl://h:9094/bootstrap]: sasl_ssl://h:9094/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified (after 10ms in state SSL_HANDSHAKE)',
      })!,
      /^SSL handshake failed: .*certificate verify failed/,
    );
    assert.equal(
      authenticationLogReason({
        message:
          '[thrd:ssl://h:9094/bootstrap]: ssl://h:9094/bootstrap: Disconnected: SSL connection closed by peer (after 1ms in state UP)',
      }),
      undefined,
    );
    assert.equal(authenticationLogReason({ message: 'Broker: Topic authorization failed' }), undefined);
  });
});

describe('the security errors', () => {
  it('are exported SluiceErrors with their own codes, never retriable', () => {
    assert.equal(kafka.KafkaAuthenticationError, KafkaAuthenticationError);
    assert.equal(kafka.KafkaAuthorizationError, KafkaAuthorizationError);
    const a = new KafkaAuthenticationError('broker:9094', SCRAM_REASON, { username: 'bob' });
    const z = new KafkaAuthorizationError(
      missingOf(bob, [{ operation: 'Read', resourceType: 'topic', resource: 'orders' }]),
    );
    for (const e of [a, z]) {
      assert.ok(e instanceof SluiceError);
      assert.equal(e.retriable, false);
    }
    assert.equal(a.code, 'SLUICE_KAFKA_AUTH_FAILED');
    assert.equal(KafkaAuthenticationError.code, 'SLUICE_KAFKA_AUTH_FAILED');
    assert.equal(z.code, 'SLUICE_KAFKA_NOT_AUTHORIZED');
    assert.equal(KafkaAuthorizationError.code, 'SLUICE_KAFKA_NOT_AUTHORIZED');
  });

  it('a refused login names the address, user and mechanism, gives the reason and never the password', () => {
    const e = securityError({ code: -1, message: 'authentication failure' }, bob);
    assert.ok(e instanceof KafkaAuthenticationError);
    const w = new AuthFailureWatch(bob);
    const listeners = new Map<string, (arg: unknown) => void>();
    w.watch({ on: (event, fn) => listeners.set(event, fn as (arg: unknown) => void) });
    listeners.get('event.log')!({ fac: 'FAIL', message: SCRAM_LOG });
    const f = w.failure!;
    assert.ok(f instanceof KafkaAuthenticationError);
    assert.equal(f.bootstrapServers, 'broker:9094');
    assert.equal(f.username, 'bob');
    assert.equal(f.mechanism, 'SCRAM-SHA-512');
    assert.equal(f.stage, 'sasl');
    assert.equal(f.reason, SCRAM_REASON);
    assert.match(
      f.message,
      /Kafka at broker:9094: the login of user 'bob' \(SASL SCRAM-SHA-512\) was refused: SASL authentication error/,
    );
    assert.match(
      f.hint,
      /user name, the password and the SASL mechanism.*kafkaCluster\(\).*SLUICE_KAFKA_CONFIG/,
    );
    assert.doesNotMatch(`${f.message} ${JSON.stringify(f)}`, /secret-password/);
  });

  it('a TLS failure says to check the CA', () => {
    const e = new KafkaAuthenticationError(
      'broker:9094',
      'SSL handshake failed: error:0A000086:SSL routines::certificate verify failed',
    );
    assert.equal(e.stage, 'tls');
    assert.match(e.message, /the TLS handshake failed/);
    assert.match(e.hint, /caLocation.*ssl\.ca\.location/);
  });

  it('a watch ends a waiting call at once with the refused login, and fails later calls at once', async () => {
    const w = new AuthFailureWatch(bob);
    const listeners = new Map<string, (arg: unknown) => void>();
    w.watch({ on: (event, fn) => listeners.set(event, fn as (arg: unknown) => void) });
    const never = new Promise<never>(() => {});
    const waiting = w.race(never);
    listeners.get('event.error')!({ code: -1, message: 'all broker connections are down' });
    assert.equal(w.failure, undefined);
    listeners.get('event.error')!({ code: -1, message: 'authentication failure' });
    await assert.rejects(waiting, KafkaAuthenticationError);
    await assert.rejects(w.race(Promise.resolve(1)), KafkaAuthenticationError);
  });

  it('a missing ACL lists every refused permission and an ACL command for each', () => {
    const e = new KafkaAuthorizationError(
      missingOf(bob, [
        { operation: 'Read', resourceType: 'topic', resource: 'orders' },
        { operation: 'Describe', resourceType: 'group', resource: 'etl' },
        { operation: 'Write', resourceType: 'transactional-id', resource: 'sluice-etl' },
      ]),
    );
    assert.equal(e.principal, 'User:bob');
    assert.equal(e.missing.length, 3);
    assert.ok(
      e.message.startsWith(
        "Principal User:bob may not: Read topic 'orders', Describe group 'etl', Write transactional-id 'sluice-etl'",
      ),
      e.message,
    );
    const lines = e.hint.split('\n').filter((l) => l.startsWith('  kafka-acls '));
    assert.deepEqual(lines, [
      '  kafka-acls --bootstrap-server broker:9094 --add --allow-principal User:bob --operation Read --topic orders',
      '  kafka-acls --bootstrap-server broker:9094 --add --allow-principal User:bob --operation Describe --group etl',
      '  kafka-acls --bootstrap-server broker:9094 --add --allow-principal User:bob --operation Write --transactional-id sluice-etl',
    ]);
    assert.doesNotMatch(`${e.message} ${e.hint}`, /secret-password/);
  });

  it("a broker error becomes the authorization error of what the call needed on the refused resource's kind", () => {
    const needs = [
      { operation: 'Write', resourceType: 'topic', resource: 'out' },
      { operation: 'Read', resourceType: 'group', resource: 'etl' },
    ] as const;
    const topic = securityError({ code: 29, message: 'Broker: Topic authorization failed' }, bob, needs);
    assert.ok(topic instanceof KafkaAuthorizationError);
    assert.deepEqual(
      topic.missing.map((m) => [m.operation, m.resourceType, m.resource]),
      [['Write', 'topic', 'out']],
    );
    assert.match(topic.message, /\(Broker: Topic authorization failed/);
    const group = securityError({ code: 30, message: 'Broker: Group authorization failed' }, bob, needs);
    assert.deepEqual(
      (group as KafkaAuthorizationError).missing.map((m) => m.resource),
      ['etl'],
    );
    assert.equal(securityError({ code: E.ERR__TRANSPORT, message: 'x' }, bob, needs), undefined);
  });

  it('without a SASL user the principal is unknown, and the ACL command says so', () => {
    const mtls = identityOf({ 'bootstrap.servers': 'b:9096', 'security.protocol': 'ssl' });
    const e = new KafkaAuthorizationError(
      missingOf(mtls, [{ operation: 'Write', resourceType: 'topic', resource: 'out' }]),
    );
    assert.equal(e.principal, undefined);
    assert.match(e.message, /^This client's principal may not: Write topic 'out'/);
    assert.match(e.hint, /--allow-principal 'User:<principal>' --operation Write --topic out/);
  });
});
