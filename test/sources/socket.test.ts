import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { InvalidOptionError } from '../../src/core/errors.js';
import { SocketTextSource, type SocketTextSourceOptions } from '../../src/sources/socket.js';
import { sleep, sourceContext, waitFor } from './helpers.js';

/** A real TCP server that records its client connections. */
class LineServer {
  readonly clients: net.Socket[] = [];
  server: net.Server | undefined;
  constructor(public port = 0) {}

  async listen(): Promise<this> {
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      socket.on('error', () => {});
      this.clients.push(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this;
  }

  get client(): net.Socket {
    const c = this.clients.at(-1);
    assert.ok(c, 'no client connected');
    return c;
  }

  async write(text: string | Buffer): Promise<void> {
    await new Promise<void>((resolve, reject) => this.client.write(text, (e) => (e ? reject(e) : resolve())));
  }

  /** Stops listening and drops every client connection. */
  async close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function freePort(): Promise<number> {
  const s = await new LineServer().listen();
  const port = s.port;
  await s.close();
  return port;
}

const servers: LineServer[] = [];
const sources: SocketTextSource[] = [];
after(async () => {
  await Promise.all(sources.map((s) => s.close()));
  await Promise.all(servers.map((s) => s.close()));
});

async function start(
  opts: Partial<SocketTextSourceOptions> = {},
): Promise<{ server: LineServer; source: SocketTextSource; ctx: ReturnType<typeof sourceContext> }> {
  const server = await new LineServer().listen();
  servers.push(server);
  const source = new SocketTextSource({ host: '127.0.0.1', port: server.port, ...opts });
  sources.push(source);
  const ctx = sourceContext();
  await source.open(ctx);
  await waitFor(() => source.connected && server.clients.length === 1, 'the source to connect');
  return { server, source, ctx };
}

async function batch(source: SocketTextSource): Promise<string[][]> {
  return source.fetch(await source.plan(Date.now()));
}

describe('SocketTextSource', () => {
  it('reassembles lines split across TCP chunks, strips \\r\\n and decodes multi-byte characters split across chunks', async () => {
    const { server, source } = await start();
    const e = Buffer.from('é'); // two bytes in UTF-8
    const pieces: (string | Buffer)[] = [
      'hel',
      'lo wor',
      'ld\r',
      '\nsecond ',
      'line\nh',
      e.subarray(0, 1),
      e.subarray(1),
      'llo\n',
    ];
    for (const p of pieces) {
      await server.write(p);
      await sleep(15);
    }
    await waitFor(() => source.bufferedLines === 3, 'three lines');
    assert.deepEqual(await batch(source), [['hello world', 'second line', 'héllo']]);
    await source.close();
  });

  it('keeps an unterminated line until its newline arrives', async () => {
    const { server, source } = await start();
    await server.write('first\npartial');
    await waitFor(() => source.bufferedLines === 1, 'the first line');
    await sleep(30);
    assert.deepEqual(await batch(source), [['first']], 'the partial line is not cut');
    await server.write(' end\n');
    await waitFor(() => source.bufferedLines === 1, 'the completed line');
    assert.deepEqual(await batch(source), [['partial end']]);
    await source.close();
  });

  it('emits a final unterminated line when the server closes the connection', async () => {
    const { server, source } = await start({ reconnect: { initialDelayMs: 5000 } });
    await server.write('a\nlast words');
    server.client.end();
    await waitFor(() => source.bufferedLines === 2, 'both lines after the close');
    assert.deepEqual(await batch(source), [['a', 'last words']]);
    await source.close();
  });

  it('puts lines that arrive after the cut into the next batch, one partition per batch', async () => {
    const { server, source } = await start();
    await server.write('one\ntwo\n');
    await waitFor(() => source.bufferedLines === 2, 'two lines');
    const plan1 = await source.plan(1000);
    assert.deepEqual(plan1.offsetRanges, []);
    await server.write('three\n');
    await waitFor(() => source.bufferedLines === 1, 'the third line');
    // fetch reads exactly what the plan cut, even though more arrived since.
    assert.deepEqual(await source.fetch(plan1), [['one', 'two']]);
    const plan2 = await source.plan(2000);
    assert.deepEqual(await source.fetch(plan2), [['three']]);
    assert.deepEqual(await batch(source), [[]], 'a batch with nothing new is one empty partition');
    await source.close();
  });

  it('connects to a server that starts after open(), logging each failed attempt at warn with host:port and the next delay', async () => {
    const port = await freePort();
    const source = new SocketTextSource({
      host: '127.0.0.1',
      port,
      reconnect: { initialDelayMs: 10, maxDelayMs: 40 },
    });
    sources.push(source);
    const ctx = sourceContext();
    await source.open(ctx); // must not fail: nobody listens yet
    assert.equal(source.connected, false);
    await waitFor(() => ctx.logger.at('warn').length >= 3, 'three failed attempts');
    const warns = ctx.logger.at('warn');
    for (const w of warns) {
      assert.match(w.msg ?? '', new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.equal(typeof w.obj.nextDelayMs, 'number');
      assert.ok(
        (w.obj.nextDelayMs as number) <= 40,
        `delay ${String(w.obj.nextDelayMs)} is capped at maxDelayMs`,
      );
      assert.match(w.msg ?? '', /ECONNREFUSED/);
    }
    assert.deepEqual(await batch(source), [[]], 'batches before the server is up are empty');

    const server = new LineServer(port);
    servers.push(server);
    await server.listen();
    await waitFor(() => source.connected && server.clients.length === 1, 'the source to connect');
    await server.write('late hello\n');
    await waitFor(() => source.bufferedLines === 1, 'a line');
    assert.deepEqual(await batch(source), [['late hello']]);
    await source.close();
  });

  it('reconnects after the server drops the connection and later accepts again', async () => {
    const { server, source, ctx } = await start({ reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
    await server.write('before\n');
    await waitFor(() => source.bufferedLines === 1, 'a line');
    await server.close(); // drop the client and stop listening
    await waitFor(() => !source.connected, 'the source to see the drop');
    await waitFor(
      () => ctx.logger.at('warn').some((w) => /refused/i.test(w.msg ?? '')),
      'a refused reconnect',
    );
    assert.ok(
      ctx.logger.at('warn').some((w) => /lost/.test(w.msg ?? '')),
      'the drop is logged',
    );

    const again = new LineServer(server.port);
    servers.push(again);
    await again.listen();
    await waitFor(() => source.connected && again.clients.length === 1, 'the source to reconnect');
    await again.write('after\n');
    await waitFor(() => source.bufferedLines === 2, 'the second line');
    assert.deepEqual(await batch(source), [['before', 'after']]);
    await source.close();
  });

  it('close() stops retrying at once and destroys the connection', async () => {
    // Retrying: a large delay is pending when close() is called; the test process would hang if it leaked.
    const port = await freePort();
    const retrying = new SocketTextSource({ host: '127.0.0.1', port, reconnect: { initialDelayMs: 60_000 } });
    const ctx = sourceContext();
    await retrying.open(ctx);
    await waitFor(() => ctx.logger.at('warn').length === 1, 'the first failure');
    const t0 = Date.now();
    await retrying.close();
    assert.ok(Date.now() - t0 < 100, 'close() is prompt');

    // Connected: the server sees the connection close, and nothing reconnects.
    const { server, source, ctx: ctx2 } = await start({ reconnect: { initialDelayMs: 5 } });
    const client = server.client;
    const seenClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await source.close();
    await seenClosed;
    assert.equal(source.connected, false);
    await sleep(100);
    assert.equal(server.clients.length, 1, 'no new connection after close()');
    assert.equal(ctx2.logger.at('warn').length, 0, 'no reconnect attempt after close()');
    await source.close(); // idempotent
  });

  it('closes when the context signal is aborted', async () => {
    const { server, source, ctx } = await start({ reconnect: { initialDelayMs: 5 } });
    const client = server.client;
    const seenClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    ctx.controller.abort();
    await seenClosed;
    await sleep(50);
    assert.equal(source.connected, false);
    assert.equal(server.clients.length, 1, 'no reconnection after abort');
  });

  it('pauses reading at maxBufferedLines so TCP backpressure slows the server, and loses no line', async () => {
    const { server, source, ctx } = await start({ maxBufferedLines: 50 });
    const total = 20_000;
    const payload = 'x'.repeat(200);
    const text = Array.from({ length: total }, (_, i) => `${i} ${payload}\n`).join('');
    server.client.write(text); // ~4 MB: more than the kernel buffers hold
    await waitFor(() => source.bufferedLines >= 50, 'the buffer to fill');
    await sleep(100);
    // Bound: the limit plus at most one received chunk (64 KiB / ~205 bytes per line).
    assert.ok(source.bufferedLines < 50 + 400, `buffered ${source.bufferedLines} lines`);
    assert.ok(server.client.writableLength > 0, 'the server has unsent data: it is held back');
    assert.ok(ctx.logger.at('warn').some((w) => /pausing/.test(w.msg ?? '')));

    const received: string[] = [];
    await waitFor(
      () => {
        if (source.bufferedLines > 0) void batch(source).then(([lines]) => received.push(...(lines ?? [])));
        return received.length === total;
      },
      'all lines through successive batches',
      20_000,
    );
    received.forEach((line, i) => assert.equal(line, `${i} ${payload}`));
    await source.close();
  });

  it('emits a line longer than maxLineLength in pieces of that length, whether or not it was split across chunks', async () => {
    const { server, source, ctx } = await start({ maxLineLength: 10 });
    await server.write('abcdefghijKLMNOPQRSTuv\r\n');
    await waitFor(() => source.bufferedLines === 3, 'three pieces');
    assert.deepEqual(await batch(source), [['abcdefghij', 'KLMNOPQRST', 'uv']]);
    await server.write('abcdefghijK');
    await waitFor(() => source.bufferedLines === 1, 'the first piece of the unterminated line');
    await server.write('LMNOPQRSTuv\nshort\n');
    await waitFor(() => source.bufferedLines === 4, 'the other pieces and the next line');
    assert.deepEqual(await batch(source), [['abcdefghij', 'KLMNOPQRST', 'uv', 'short']]);
    assert.equal(
      ctx.logger.at('warn').filter((w) => /maxLineLength/.test(w.msg ?? '')).length,
      2,
      'one warning per long line',
    );
    await source.close();
  });

  it('describes its options and says it has no offsets', async () => {
    const source = new SocketTextSource({ host: 'localhost', port: 9999 });
    assert.equal(source.kind, 'socket');
    assert.deepEqual(source.describe(), {
      host: 'localhost',
      port: 9999,
      encoding: 'utf8',
      reconnect: { initialDelayMs: 100, maxDelayMs: 5000 },
      maxBufferedLines: 100_000,
      maxLineLength: 1_048_576,
      connectTimeoutMs: 10_000,
      delivery: 'at-most-once',
    });
  });

  it('rejects invalid options with an InvalidOptionError naming the option', () => {
    const base = { host: 'localhost', port: 9999 };
    const cases: [string, unknown][] = [
      ['host', { ...base, host: '' }],
      ['host', { ...base, host: 42 }],
      ['port', { ...base, port: 0 }],
      ['port', { ...base, port: 65536 }],
      ['port', { ...base, port: 80.5 }],
      ['port', { ...base, port: '9999' }],
      ['encoding', { ...base, encoding: 'klingon' }],
      ['reconnect.initialDelayMs', { ...base, reconnect: { initialDelayMs: 0 } }],
      ['reconnect.initialDelayMs', { ...base, reconnect: { initialDelayMs: Number.NaN } }],
      ['reconnect.maxDelayMs', { ...base, reconnect: { initialDelayMs: 500, maxDelayMs: 100 } }],
      ['maxBufferedLines', { ...base, maxBufferedLines: 0 }],
      ['maxLineLength', { ...base, maxLineLength: 1.5 }],
      ['connectTimeoutMs', { ...base, connectTimeoutMs: -1 }],
    ];
    for (const [option, opts] of cases) {
      assert.throws(
        () => new SocketTextSource(opts as SocketTextSourceOptions),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option && e.message.includes(option),
        `expected InvalidOptionError for ${option} with ${JSON.stringify(opts)}`,
      );
    }
  });
});
