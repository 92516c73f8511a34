import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * What this process's open file descriptors point at (Linux: /proc/self/fd), e.g. `/tmp/x/a.txt`
 * or `socket:[12345]`. Descriptors that close while being listed are left out.
 */
export function openDescriptors(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.push(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // closed meanwhile (or the descriptor readdir itself used)
    }
  }
  return out;
}

/**
 * Number of this process's TCP sockets connected to one of `ports` (any remote host, any state
 * but LISTEN): the connections a client (e.g. librdkafka's threads, which Node's handle list does
 * not show) holds to a server. Linux only: /proc/self/net/tcp{,6} mapped through the process's
 * socket descriptors.
 */
export function tcpConnectionsTo(ports: readonly number[]): number {
  const inodes = new Set<string>();
  for (const target of openDescriptors()) {
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]!);
  }
  let n = 0;
  for (const file of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const remotePort = parseInt(cols[2]!.split(':')[1]!, 16);
      const listening = cols[3] === '0A';
      if (!listening && ports.includes(remotePort) && inodes.has(cols[9]!)) n++;
    }
  }
  return n;
}
