/**
 * SocketTextSource runs the source conformance suite against a real TCP server (node:net) on
 * 127.0.0.1: append() writes lines to the client connection the server accepted and waits until
 * the source has received them. Delivery is at-most-once: nothing can be read again, so the replay
 * and restart properties do not apply. Release is checked from the server's side: every client
 * connection it accepted is closed, and the source does not reconnect after close().
 */
import net from 'node:net';
import type { Source } from '../../src/core/source.js';
import { SocketTextSource } from '../../src/sources/socket.js';
import { sourceConformance } from '../conformance/source.js';
import { waitFor } from './helpers.js';

/** A TCP server that knows its client connections and which of them are still open. */
async function lineServer() {
  const clients: net.Socket[] = [];
  const open = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    clients.push(socket);
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return { server, port, clients, open };
}

sourceConformance<string>('SocketTextSource', {
  capabilities: { offsets: false, replayable: false, restart: false, handles: true },
  input: async () => {
    const { server, port, clients, open } = await lineServer();
    const socketSource = (source: Source<string>) => source as SocketTextSource;
    return {
      // A short back-off, so that a source that kept reconnecting after close() would show it.
      newSource: () =>
        new SocketTextSource({ host: '127.0.0.1', port, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } }),
      ready: (source) =>
        waitFor(() => socketSource(source).connected && open.size === 1, 'the source to connect', 20_000),
      append: async (source, values) => {
        const s = socketSource(source);
        const client = clients.at(-1);
        if (!client) throw new Error('no client connection to write to');
        const before = s.bufferedLines;
        const text = values.map((v) => `${v}\n`).join('');
        await new Promise<void>((resolve, reject) => client.write(text, (e) => (e ? reject(e) : resolve())));
        await waitFor(
          () => s.bufferedLines >= before + values.length,
          `${values.length} lines to arrive`,
          20_000,
        );
      },
      handles: () => open.size,
      holdsHandlesWhileOpen: true,
      cleanup: async () => {
        for (const c of clients) c.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  },
  view: (line) => ({ value: line }),
});
