import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { escapeControlChars } from '../../src/core/logger.js';
import { repoRoot } from '../examples/child-process.js';

describe('escapeControlChars', () => {
  it('escapes line breaks, tabs, C0 and C1 controls, DEL and the Unicode line separators, and nothing else', () => {
    assert.equal(escapeControlChars('a\nb\r\tc'), 'a\\nb\\r\\tc');
    assert.equal(escapeControlChars('\u0000\u0007\u001b[31m\u007f'), '\\x00\\x07\\x1b[31m\\x7f');
    assert.equal(escapeControlChars('\u0085\u009b\u2028\u2029'), '\\x85\\x9b\\u2028\\u2029');
    const plain = 'ünïcödé \\n "quotes" {"level":60} €';
    assert.equal(escapeControlChars(plain), plain);
  });

  it('makes any text one line', () => {
    const forged = 'x\n{"level":60,"msg":"forged"}\r\n';
    assert.equal(escapeControlChars(forged).split('\n').length, 1);
  });
});

describe('createLogger', () => {
  it('redacts secrets at any depth: secret keys, URLs in strings, private keys, errors and child bindings; keeps the rest', async () => {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'test/core/fixtures/logging-secrets.ts'],
      { cwd: repoRoot },
    );
    assert.equal(stdout, '');
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 2, stderr);
    for (const secret of [
      'child-binding-pw',
      'child-token',
      'cfg-pw',
      'cfg-oauth',
      'deep-api-key',
      'list-pw',
      'url-pw',
      'url-token',
      'text-pw',
      'pem-body',
      'err-pw',
      'err-prop-pw',
      'msg-pw',
    ]) {
      assert.ok(!stderr.includes(secret), `${secret} is in the log:\n${stderr}`);
    }
    const [info, error] = lines.map((l) => JSON.parse(l) as Record<string, any>);
    assert.equal(info!.connection, 'postgres://app:***@db/app');
    assert.equal(info!.token, '[redacted]');
    assert.deepEqual(info!.consumerConfig, {
      'sasl.password': '[redacted]',
      'sasl.oauthbearer.config': '[redacted]',
      'client.id': 'c1',
    });
    assert.deepEqual(info!.deep, { a: { b: { c: { d: { apiKey: '[redacted]', ok: 'visible' } } } } });
    assert.equal(info!.url, 'redis://:***@h:6379/0?token=***&db=1');
    assert.equal(info!.text, 'connect to mysql://root:***@h/db failed');
    assert.equal(info!.pem, '[redacted]');
    assert.equal(info!.key, 'record-key', "a record's key is not a secret");
    assert.equal(error!.msg, 'failed with https://u:***@h/x');
    assert.equal(error!.err.message, 'cannot reach postgres://u:***@h/db');
    assert.match(error!.err.stack, /^Error: cannot reach postgres:\/\/u:\*\*\*@h\/db\n/);
    assert.deepEqual(error!.err.config, { 'ssl.key.password': '[redacted]' });
  });
});
