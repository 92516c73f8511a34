import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { InvalidOptionError, SourceError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { StreamingContext } from '../core/context.js';
import type { DStream, Named } from '../core/dstream.js';
import type { InputPlan, Source, SourceContext } from '../core/source.js';

/** Options of {@link SocketTextSource}. */
export interface SocketTextSourceOptions {
  /** Host name or IP address of the TCP server (e.g. the machine running `nc -lk 9999`). */
  host: string;
  /** TCP port, 1 to 65535. */
  port: number;
  /** How the bytes are decoded into text. Default `utf8`. */
  encoding?: BufferEncoding;
  /**
   * Back-off between connection attempts: the n-th consecutive failure waits about
   * `initialDelayMs * 2^(n-1)`, capped at `maxDelayMs`, with jitter (a random value between half the
   * delay and the full delay). Defaults: `initialDelayMs` 100, `maxDelayMs` 5000 (or `initialDelayMs`
   * when that is larger).
   */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /**
   * Lines held between two batches before the socket is paused (default 100 000). While paused the
   * source reads nothing, the kernel buffers fill up and TCP flow control makes the server wait:
   * nothing is dropped, the sender is slowed down. The next {@link SocketTextSource.plan} takes the
   * lines and resumes reading. The overshoot is at most one received chunk (64 KiB).
   */
  maxBufferedLines?: number;
  /**
   * Longest line, in characters (default 1 048 576). A line that grows past it without a newline is
   * emitted in pieces of this length (a warning is logged), so one endless line cannot exhaust memory.
   */
  maxLineLength?: number;
  /** An attempt that has not connected after this long is abandoned and retried (default 10 000). */
  connectTimeoutMs?: number;
}

/** The `detail` of a plan made by {@link SocketTextSource}: the lines cut for the batch. */
export interface SocketPlanDetail {
  readonly lines: string[];
}

const DEFAULTS = {
  encoding: 'utf8' as BufferEncoding,
  initialDelayMs: 100,
  maxDelayMs: 5000,
  maxBufferedLines: 100_000,
  maxLineLength: 1_048_576,
  connectTimeoutMs: 10_000,
};

/**
 * Lines of text read from a TCP server, like Spark's `socketTextStream`: connect to `host:port` (for
 * instance `nc -lk 9999`) and turn the newline-separated text it sends into records, one per line
 * (`\n` or `\r\n`; the line break is not part of the record). A line split across TCP packets arrives
 * whole; a last line without a newline is kept until the newline comes or the connection closes.
 *
 * Each batch takes the lines received since the previous batch: {@link plan} cuts the buffer at that
 * moment and {@link fetch} returns them as one batch partition. Lines that arrive after the cut go to
 * the next batch.
 *
 * Connection: {@link open} does not wait for the server. If it is not up yet, or the connection drops
 * later, the source retries with exponential back-off (see {@link SocketTextSourceOptions.reconnect}),
 * logging every failure at `warn` with `host:port` and the next delay; batches taken meanwhile are
 * empty. The back-off uses wall-clock timers, not the context's clock: it is about the network, not
 * about batch time. {@link close} (or the context's abort signal) stops retrying and closes the socket.
 *
 * Delivery: **at-most-once**. The source has no offsets (`offsetRanges` is always empty) and nothing
 * can be read again: lines buffered or in a batch that had not completed when the process crashes or
 * stops are lost, as are lines the server sent while no connection was open. Use Kafka when the
 * input matters.
 *
 * Memory: bounded by {@link SocketTextSourceOptions.maxBufferedLines} (TCP backpressure when batches
 * are not taken) and {@link SocketTextSourceOptions.maxLineLength}.
 */
export class SocketTextSource implements Source<string> {
  readonly kind = 'socket';

  readonly #host: string;
  readonly #port: number;
  readonly #encoding: BufferEncoding;
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #maxBufferedLines: number;
  readonly #maxLineLength: number;
  readonly #connectTimeoutMs: number;

  #name: string;
  #log: Logger = silentLogger;
  #state: 'new' | 'open' | 'closed' = 'new';
  #socket: net.Socket | undefined;
  #connected = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Consecutive failed attempts since the last successful connection. */
  #failures = 0;
  #lines: string[] = [];
  #partial = '';
  /** The unterminated line has already been cut into pieces (warned once per line). */
  #splitting = false;
  #signal: AbortSignal | undefined;
  readonly #onAbort = () => void this.close();

  constructor(options: SocketTextSourceOptions) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionError('options', 'an object with host and port', options);
    }
    const { host, port } = options;
    if (typeof host !== 'string' || host.trim() === '') {
      throw new InvalidOptionError('host', 'a non-empty host name or IP address', host);
    }
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new InvalidOptionError('port', 'an integer from 1 to 65535', port);
    }
    const encoding = options.encoding ?? DEFAULTS.encoding;
    if (typeof encoding !== 'string' || !Buffer.isEncoding(encoding)) {
      throw new InvalidOptionError('encoding', 'a Node.js BufferEncoding such as utf8 or latin1', encoding);
    }
    const reconnect = options.reconnect ?? {};
    if (reconnect === null || typeof reconnect !== 'object') {
      throw new InvalidOptionError('reconnect', 'an object { initialDelayMs?, maxDelayMs? }', reconnect);
    }
    const initialDelayMs = reconnect.initialDelayMs ?? DEFAULTS.initialDelayMs;
    if (!isFiniteNumber(initialDelayMs) || initialDelayMs < 1) {
      throw new InvalidOptionError(
        'reconnect.initialDelayMs',
        'a number of milliseconds >= 1',
        initialDelayMs,
      );
    }
    const maxDelayMs = reconnect.maxDelayMs ?? Math.max(DEFAULTS.maxDelayMs, initialDelayMs);
    if (!isFiniteNumber(maxDelayMs) || maxDelayMs < initialDelayMs) {
      throw new InvalidOptionError(
        'reconnect.maxDelayMs',
        `a number of milliseconds >= reconnect.initialDelayMs (${initialDelayMs})`,
        maxDelayMs,
      );
    }
    const maxBufferedLines = options.maxBufferedLines ?? DEFAULTS.maxBufferedLines;
    if (!Number.isSafeInteger(maxBufferedLines) || maxBufferedLines < 1) {
      throw new InvalidOptionError('maxBufferedLines', 'an integer >= 1', maxBufferedLines);
    }
    const maxLineLength = options.maxLineLength ?? DEFAULTS.maxLineLength;
    if (!Number.isSafeInteger(maxLineLength) || maxLineLength < 1) {
      throw new InvalidOptionError('maxLineLength', 'an integer number of characters >= 1', maxLineLength);
    }
    const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    if (!isFiniteNumber(connectTimeoutMs) || connectTimeoutMs < 1) {
      throw new InvalidOptionError('connectTimeoutMs', 'a number of milliseconds >= 1', connectTimeoutMs);
    }
    this.#host = host;
    this.#port = port;
    this.#encoding = encoding;
    this.#initialDelayMs = initialDelayMs;
    this.#maxDelayMs = maxDelayMs;
    this.#maxBufferedLines = maxBufferedLines;
    this.#maxLineLength = maxLineLength;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#name = `socket ${this.#address}`;
  }

  get #address(): string {
    return this.#host.includes(':') ? `[${this.#host}]:${this.#port}` : `${this.#host}:${this.#port}`;
  }

  /** True while a TCP connection is established. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Complete lines received and not yet taken by a batch. */
  get bufferedLines(): number {
    return this.#lines.length;
  }

  describe(): Record<string, unknown> {
    return {
      host: this.#host,
      port: this.#port,
      encoding: this.#encoding,
      reconnect: { initialDelayMs: this.#initialDelayMs, maxDelayMs: this.#maxDelayMs },
      maxBufferedLines: this.#maxBufferedLines,
      maxLineLength: this.#maxLineLength,
      connectTimeoutMs: this.#connectTimeoutMs,
      delivery: 'at-most-once',
    };
  }

  /** Starts connecting and returns at once; a server that is not up yet is retried with back-off. */
  async open(ctx: SourceContext): Promise<void> {
    if (this.#state !== 'new') {
      throw new SourceError(
        this.#name,
        `open() called on a source that is ${this.#state}`,
        'Create a new source',
      );
    }
    this.#state = 'open';
    this.#name = ctx.name;
    this.#log = ctx.logger.child({ source: ctx.name, kind: this.kind, address: this.#address });
    this.#signal = ctx.signal;
    if (ctx.signal.aborted) {
      await this.close();
      return;
    }
    ctx.signal.addEventListener('abort', this.#onAbort, { once: true });
    this.#connect();
  }

  /** Cuts the lines received so far: they are this batch's, later ones go to the next batch. */
  async plan(_batchTime: number): Promise<InputPlan> {
    const lines = this.#lines;
    this.#lines = [];
    const socket = this.#socket;
    if (socket && socket.isPaused() && this.#state === 'open') {
      this.#log.debug({}, 'resuming the socket: a batch took the buffered lines');
      socket.resume();
    }
    const detail: SocketPlanDetail = { lines };
    return { offsetRanges: [], detail };
  }

  /** Returns the lines the plan cut, as one batch partition. */
  async fetch(plan: InputPlan): Promise<string[][]> {
    const detail = plan.detail as Partial<SocketPlanDetail> | undefined;
    if (!detail || !Array.isArray(detail.lines)) {
      throw new SourceError(
        this.#name,
        'the plan has no lines: it was not made by a socket source',
        'Pass fetch() the plan that this source returned from plan()',
      );
    }
    return [detail.lines];
  }

  /** Stops reconnecting and closes the connection. Lines not yet taken by a batch are dropped. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#signal?.removeEventListener('abort', this.#onAbort);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const socket = this.#socket;
    this.#socket = undefined;
    this.#connected = false;
    if (socket && !socket.destroyed) {
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.destroy();
      await closed;
    }
    if (this.#lines.length > 0) {
      this.#log.info({ droppedLines: this.#lines.length }, 'socket source closed with lines no batch took');
    }
    this.#lines = [];
    this.#partial = '';
  }

  #connect(): void {
    if (this.#state !== 'open') return;
    this.#timer = undefined;
    const decoder = new StringDecoder(this.#encoding);
    const socket = net.createConnection({ host: this.#host, port: this.#port });
    this.#socket = socket;
    let lastError: Error | undefined;
    let wasConnected = false;

    socket.setTimeout(this.#connectTimeoutMs, () => {
      if (!wasConnected) socket.destroy(new Error(`connect timed out after ${this.#connectTimeoutMs} ms`));
    });
    socket.once('connect', () => {
      wasConnected = true;
      this.#connected = true;
      this.#failures = 0;
      socket.setTimeout(0);
      socket.setKeepAlive(true, 30_000);
      this.#log.info({}, `connected to ${this.#address}`);
      if (this.#lines.length >= this.#maxBufferedLines) socket.pause();
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.#socket !== socket) return;
      this.#receive(decoder.write(chunk));
      if (this.#lines.length >= this.#maxBufferedLines && !socket.isPaused()) {
        this.#log.warn(
          { bufferedLines: this.#lines.length, maxBufferedLines: this.#maxBufferedLines },
          `pausing ${this.#address}: ${this.#lines.length} lines wait for a batch (TCP backpressure until the next batch)`,
        );
        socket.pause();
      }
    });
    socket.on('error', (err) => {
      lastError = err;
    });
    socket.once('close', () => {
      if (this.#socket !== socket) return; // close() already took over
      this.#socket = undefined;
      this.#connected = false;
      // The connection is over: the rest of the bytes and an unterminated last line are complete.
      this.#receive(decoder.end());
      if (this.#partial !== '') {
        this.#emit(stripCr(this.#partial));
        this.#partial = '';
        this.#splitting = false;
      }
      if (this.#state !== 'open') return;
      this.#scheduleReconnect(wasConnected, lastError);
    });
  }

  #scheduleReconnect(wasConnected: boolean, err: Error | undefined): void {
    const base = Math.min(this.#maxDelayMs, this.#initialDelayMs * 2 ** Math.min(this.#failures, 30));
    const delay = Math.max(1, Math.round(base / 2 + Math.random() * (base / 2)));
    this.#failures++;
    const reason = err ? ((err as NodeJS.ErrnoException).code ?? err.message) : 'closed by the server';
    const what = wasConnected
      ? `connection to ${this.#address} lost (${reason})`
      : `cannot connect to ${this.#address} (${reason})`;
    this.#log.warn(
      {
        host: this.#host,
        port: this.#port,
        attempt: this.#failures,
        nextDelayMs: delay,
        err: err?.message,
      },
      `socket source: ${what}; retrying in ${delay} ms`,
    );
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  /** Splits decoded text into lines, keeping an unterminated tail in `#partial`. */
  #receive(text: string): void {
    if (text === '') return;
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl === -1) break;
      const piece = text.slice(start, nl);
      this.#emit(stripCr(this.#partial === '' ? piece : this.#partial + piece));
      this.#partial = '';
      this.#splitting = false;
      start = nl + 1;
    }
    if (start < text.length) this.#partial += text.slice(start);
    // An unterminated line may not grow without bound; a trailing \r may still be half of a \r\n.
    const max = this.#maxLineLength;
    while (
      this.#partial.length > max &&
      !(this.#partial.length === max + 1 && this.#partial.endsWith('\r'))
    ) {
      if (!this.#splitting) this.#warnLongLine();
      this.#splitting = true;
      this.#lines.push(this.#partial.slice(0, max));
      this.#partial = this.#partial.slice(max);
    }
  }

  #warnLongLine(): void {
    this.#log.warn(
      { maxLineLength: this.#maxLineLength },
      `a line from ${this.#address} is longer than maxLineLength (${this.#maxLineLength} characters): emitting it in pieces`,
    );
  }

  #emit(line: string): void {
    const max = this.#maxLineLength;
    if (line.length <= max) {
      this.#lines.push(line);
      return;
    }
    if (!this.#splitting) this.#warnLongLine();
    for (let i = 0; i < line.length; i += max) this.#lines.push(line.slice(i, i + max));
  }
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/**
 * Lines of text from a TCP server, e.g. `nc -lk 9999` (Spark's `socketTextStream`). At-most-once:
 * a socket cannot be read again after a crash.
 *
 * @example
 * ```ts
 * import { StreamingContext, socketTextStream } from 'sluice';
 * const ctx = new StreamingContext({ batchInterval: 1000 });
 * socketTextStream(ctx, '127.0.0.1', 9999, { name: 'lines' }).count().print();
 * ```
 */
export function socketTextStream(
  ctx: StreamingContext,
  host: string,
  port: number,
  options: Omit<SocketTextSourceOptions, 'host' | 'port'> & Named = {},
): DStream<string> {
  const { name, ...rest } = options;
  return ctx.stream(new SocketTextSource({ host, port, ...rest }), { name });
}
