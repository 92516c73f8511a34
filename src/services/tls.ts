/**
 * The secured test broker's TLS material (a test CA, the broker's keystore, a truststore and a client
 * certificate, made by scripts/kafka/make-tls.sh with openssl and keytool), and a probe that a TLS
 * listener answers Kafka with a certificate that CA signed.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { ServiceStartError } from '../core/errors.js';
import { lastLines, repoRoot, runCommand, sluicePath } from './util.js';

/** The principal the mutual-TLS listener gives the client certificate. */
const CLIENT_PRINCIPAL = 'User:sluice-client';
const PROBE_TIMEOUT_MS = 3_000;

export interface SecureKafkaTls {
  /** The test CA's certificate (PEM): librdkafka `ssl.ca.location`. */
  caLocation: string;
  /** A client certificate signed by the CA (PEM) and its unencrypted PKCS#8 key, for mutual TLS. */
  clientCertificateLocation: string;
  clientKeyLocation: string;
  /** The principal the mTLS listener gives that certificate. */
  clientPrincipal: string;
  /** The CA in a PKCS12 truststore (for Java clients) and the file holding its password. */
  truststoreLocation: string;
  truststorePasswordFile: string;
}

const TLS_FILES = [
  'ca.pem',
  'broker.p12',
  'broker.p12.password',
  'truststore.p12',
  'truststore.p12.password',
  'client.pem',
  'client.key',
  'VERSION',
];

export function tlsPaths(
  tlsDir: string,
): SecureKafkaTls & { brokerKeystore: string; brokerKeystorePasswordFile: string } {
  return {
    caLocation: path.join(tlsDir, 'ca.pem'),
    clientCertificateLocation: path.join(tlsDir, 'client.pem'),
    clientKeyLocation: path.join(tlsDir, 'client.key'),
    clientPrincipal: CLIENT_PRINCIPAL,
    truststoreLocation: path.join(tlsDir, 'truststore.p12'),
    truststorePasswordFile: path.join(tlsDir, 'truststore.p12.password'),
    brokerKeystore: path.join(tlsDir, 'broker.p12'),
    brokerKeystorePasswordFile: path.join(tlsDir, 'broker.p12.password'),
  };
}

/** Why the TLS material in `tlsDir` cannot be used ('' when it can): missing files or a certificate expiring within a day. */
export function tlsProblem(tlsDir: string): string {
  const missing = TLS_FILES.filter((f) => !existsSync(path.join(tlsDir, f)));
  if (missing.length > 0) return `missing ${missing.join(', ')}`;
  for (const f of ['ca.pem', 'broker.pem', 'client.pem']) {
    try {
      const cert = new X509Certificate(readFileSync(path.join(tlsDir, f)));
      if (Date.parse(cert.validTo) < Date.now() + 86_400_000) return `${f} expires ${cert.validTo}`;
    } catch (e) {
      return `${f}: ${(e as Error).message}`;
    }
  }
  return '';
}

/**
 * Makes the CA, the broker keystore and the client certificate with `scripts/kafka/make-tls.sh`
 * (openssl + keytool) when they are missing or expire within a day. Returns their paths.
 */
export async function ensureTlsMaterial(tlsDir: string = sluicePath('tls')): Promise<SecureKafkaTls> {
  const dir = path.resolve(tlsDir);
  if (tlsProblem(dir) !== '') {
    const script = path.join(repoRoot, 'scripts', 'kafka', 'make-tls.sh');
    const r = await runCommand('bash', [script, dir], { timeoutMs: 180_000 });
    const problem = tlsProblem(dir);
    if (r.code !== 0 || problem !== '') {
      throw new ServiceStartError(
        'Kafka (secured)',
        r.error ??
          `${path.relative(repoRoot, script)} could not make the TLS material in ${dir} (exit ${r.code}${problem ? `; ${problem}` : ''})`,
        lastLines(r.output, 20),
      );
    }
  }
  const { brokerKeystore: _k, brokerKeystorePasswordFile: _p, ...paths } = tlsPaths(dir);
  return paths;
}

/**
 * Opens TLS to host:port trusting only `caFile`, sends a Kafka ApiVersions v0 request (answered before
 * SASL authentication) and checks the correlation id. `stage`: 'connect' refused, 'tls' handshake
 * failed (e.g. a broker using another CA), 'answer' no Kafka answer.
 */
export function probeSecureKafka(
  host: string,
  port: number,
  caFile: string,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<{ ok: true } | { ok: false; stage: 'connect' | 'tls' | 'answer'; error: string }> {
  const clientId = Buffer.from('sluice-probe');
  const correlationId = 0x51c4;
  const req = Buffer.alloc(14 + clientId.length);
  req.writeInt32BE(req.length - 4, 0);
  req.writeInt16BE(18, 4); // ApiVersions
  req.writeInt16BE(0, 6);
  req.writeInt32BE(correlationId, 8);
  req.writeInt16BE(clientId.length, 12);
  clientId.copy(req, 14);
  let ca: Buffer;
  try {
    ca = readFileSync(caFile);
  } catch (e) {
    return Promise.resolve({ ok: false, stage: 'tls', error: (e as Error).message });
  }
  return new Promise((resolve) => {
    let stage: 'connect' | 'tls' | 'answer' = 'connect';
    let data = Buffer.alloc(0);
    let settled = false;
    const socket = tls.connect({ host, port, ca });
    const finish = (
      r: { ok: true } | { ok: false; stage: 'connect' | 'tls' | 'answer'; error: string },
    ): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(
      () => finish({ ok: false, stage, error: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    socket.on('connect', () => (stage = 'tls'));
    socket.on('secureConnect', () => {
      stage = 'answer';
      socket.write(req);
    });
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length >= 4 && data.length >= 4 + data.readInt32BE(0)) {
        finish(
          data.length >= 8 && data.readInt32BE(4) === correlationId
            ? { ok: true }
            : { ok: false, stage: 'answer', error: 'the answer is not a Kafka ApiVersions response' },
        );
      }
    });
    socket.on('end', () =>
      finish({ ok: false, stage, error: 'the server closed the connection without answering' }),
    );
    socket.on('error', (e: NodeJS.ErrnoException) =>
      finish({ ok: false, stage, error: e.code ? `${e.code}: ${e.message}` : e.message }),
    );
  });
}
