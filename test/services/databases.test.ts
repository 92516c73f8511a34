import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ServiceStartError } from '../../src/core/errors.js';
import {
  ensureMariaDb,
  ensurePostgres,
  ensureRedis,
  mariadbStatus,
  postgresStatus,
  redisStatus,
} from '../../src/services/index.js';
import { freePorts } from '../helpers/ports.js';
import { withEnv } from './helpers.js';

const exec = promisify(execFile);

// The answers are checked with the servers' own command-line clients (a real query, independent of
// the probes in src/services/databases.ts).

describe('databases', () => {
  test('ensurePostgres returns a URL on which PostgreSQL runs a query', async () => {
    const pg = await ensurePostgres();
    const { stdout } = await exec('psql', [pg.url, '-Atc', 'select 40 + 2'], { timeout: 10_000 });
    assert.equal(stdout.trim(), '42');
    assert.equal((await postgresStatus()).answering, true);
  });

  test('ensureMariaDb returns a URL on which MariaDB runs a query', async () => {
    const my = await ensureMariaDb();
    const u = new URL(my.url);
    const { stdout } = await exec(
      'mariadb',
      [
        '-h',
        u.hostname,
        '-P',
        u.port || '3306',
        '-u',
        decodeURIComponent(u.username),
        '-N',
        '-B',
        '-e',
        'select 40 + 2',
        u.pathname.slice(1),
      ],
      { timeout: 10_000, env: { ...process.env, MYSQL_PWD: decodeURIComponent(u.password) } },
    );
    assert.equal(stdout.trim(), '42');
    assert.equal((await mariadbStatus()).answering, true);
  });

  test('ensureRedis returns a URL on which Redis answers PING', async () => {
    const redis = await ensureRedis();
    const { stdout } = await exec('redis-cli', ['-u', redis.url, 'PING'], { timeout: 10_000 });
    assert.equal(stdout.trim(), 'PONG');
    assert.equal((await redisStatus()).answering, true);
  });

  test('a server URL from the environment that does not answer fails with ServiceStartError and is never started', async () => {
    const [port] = await freePorts(1);
    await withEnv('SLUICE_REDIS_URL', `redis://:secret-pw@127.0.0.1:${port}`, async () => {
      await assert.rejects(ensureRedis({ externalWaitMs: 1_000 }), (e: unknown) => {
        assert.ok(e instanceof ServiceStartError, String(e));
        assert.equal(e.service, 'Redis');
        assert.match(e.message, /SLUICE_REDIS_URL=.*does not answer/);
        assert.doesNotMatch(e.message, /secret-pw/, 'the password is not in the message');
        return true;
      });
    });
  });
});
