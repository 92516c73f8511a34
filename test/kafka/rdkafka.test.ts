import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { redactConfig } from '../../src/kafka/rdkafka.js';

describe('redactConfig', () => {
  const SECRET_KEYS = [
    'sasl.password',
    'sasl.username',
    'sasl.jaas.config',
    'sasl.kerberos.keytab',
    'sasl.oauthbearer.config',
    'sasl.oauthbearer.client.secret',
    'sasl.oauthbearer.assertion.private.key.pem',
    'sasl.oauthbearer.assertion.private.key.passphrase',
    'sasl.oauthbearer.token.endpoint.url',
    'ssl.key.password',
    'ssl.key.pem',
    'ssl.key.location',
    'ssl_key',
    'ssl.keystore.location',
    'ssl.keystore.password',
  ];
  const SHOWN = {
    'security.protocol': 'sasl_ssl',
    'sasl.mechanisms': 'SCRAM-SHA-512',
    'sasl.oauthbearer.method': 'oidc',
    'sasl.oauthbearer.client.id': 'sluice',
    'sasl.oauthbearer.scope': 'kafka',
    'sasl.kerberos.service.name': 'kafka',
    'ssl.ca.location': '/etc/ssl/ca.pem',
    'ssl.certificate.location': '/etc/ssl/client.pem',
    'ssl.certificate.pem': '-----BEGIN CERTIFICATE-----',
    'ssl.endpoint.identification.algorithm': 'https',
    'enable.ssl.certificate.verification': true,
    'client.id': 'job-1',
    'group.id': 'orders',
    'fetch.max.bytes': 1048576,
  };

  for (const key of SECRET_KEYS) {
    it(`hides the value of ${key}`, () => {
      const value = `value-of-${key}`;
      const out = redactConfig({ [key]: value, 'client.id': 'job-1' });
      assert.deepEqual(out, { [key]: '[redacted]', 'client.id': 'job-1' });
      assert.ok(!JSON.stringify(out).includes(value));
    });
  }

  it('shows the keys that are not secret (mechanisms, certificates, CA, ids, numbers and booleans) as they are', () => {
    assert.deepEqual(redactConfig(SHOWN), SHOWN);
  });

  it('hides the password and secret parameters of a URL given as the value of a key that is not secret', () => {
    assert.deepEqual(redactConfig({ 'custom.url': 'https://u:pw@idp.example/x?client_secret=s&a=1' }), {
      'custom.url': 'https://u:***@idp.example/x?client_secret=***&a=1',
    });
  });

  it('returns a copy: the config keeps its secrets for the client', () => {
    const config = { 'sasl.password': 'p' };
    redactConfig(config);
    assert.deepEqual(config, { 'sasl.password': 'p' });
  });
});
