/**
 * Case 7's access-log lines: parse, convert the action time in an explicit time zone, format.
 *
 * Input: one line of 15 comma-separated fields, each wrapped in the marker `<<<!>>>`:
 *
 *   <<<!>>>3111<<<!>>>,<<<!>>>238<<<!>>>,<<<!>>>20181111132902<<<!>>>,<<<!>>>58.223.1.112<<<!>>>,...
 *
 * Fields by position: 0 record id, 1 user id, 2 action time `yyyyMMddHHmmss`, 3 client IP,
 * 4 server IP, 5 client port, 6 server port, 7 server domain, 8-12 empty, 13 URL, 14 a number.
 *
 * Output: `userid|timestamp|clientIp:clientPort|serverIp:serverPort|url`, the timestamp in epoch
 * milliseconds of the action time read in the given IANA time zone (never the process's).
 *
 * A line is malformed when it does not hold exactly 15 marker-wrapped fields or its time is not a
 * real `yyyyMMddHHmmss` time in the zone: the parser throws an {@link AccessLogError} whose
 * message is the reason (`expected 15 fields, got 14`, `bad time '2018131...'`), which is what
 * `tryMap` sends to the dead-letter destination. Pure: no I/O, no global state; each compiled
 * parser keeps a bounded cache of its zone's UTC offset per local minute (offsets come from Intl,
 * i.e. the time zone database Node ships, so DST rules follow the Node release).
 *
 * @example
 * ```ts
 * const etl = accessLogEtl({ timeZone: 'Asia/Shanghai' });
 * records.tryMap((r) => etl(r.value ?? ''), { name: 'parse-access-log' });
 * ```
 */
import { SluiceError } from 'sluice';

/** Wraps every field of an input line. */
export const MARKER = '<<<!>>>';
/** A comma and the marker opening the next field. */
const NEXT_FIELD = `,${MARKER}`;

/** Fields of a well-formed line. */
export const FIELD_COUNT = 15;

/** Field positions in an input line. */
export const FIELD = {
  recordId: 0,
  userId: 1,
  actionTime: 2,
  clientIp: 3,
  serverIp: 4,
  clientPort: 5,
  serverPort: 6,
  serverDomain: 7,
  url: 13,
  number: 14,
} as const;

/**
 * What to do with a local time that a DST change makes ambiguous (it happened twice: clocks went
 * back) or nonexistent (it never happened: clocks jumped forward), as in Temporal:
 * - `compatible` (default; java.time's and Temporal's default): an ambiguous time is the earlier
 *   instant; a nonexistent one moves forward by the length of the gap (02:30 in a 1 h gap -> 03:30).
 * - `earlier` / `later`: the earlier / later of the two instants; a nonexistent time is read with
 *   the offset before / after the gap.
 * - `reject`: both are malformed (the line goes to the dead letters).
 */
export type Disambiguation = 'compatible' | 'earlier' | 'later' | 'reject';

export const DISAMBIGUATIONS: readonly Disambiguation[] = ['compatible', 'earlier', 'later', 'reject'];

export interface AccessLogOptions {
  /** IANA time zone the action times are written in, e.g. `'Asia/Shanghai'` or `'UTC'`. Required. */
  readonly timeZone: string;
  /** Local times made ambiguous or nonexistent by DST (default `compatible`). */
  readonly disambiguation?: Disambiguation;
}

/** The kinds of malformed lines, each with a stable code (see {@link AccessLogError.code}). */
export type AccessLogErrorKind = 'not-a-line' | 'field-count' | 'missing-marker' | 'bad-time';

const CODES: Record<AccessLogErrorKind, string> = {
  'not-a-line': 'ACCESS_LOG_NOT_A_LINE',
  'field-count': 'ACCESS_LOG_FIELD_COUNT',
  'missing-marker': 'ACCESS_LOG_MISSING_MARKER',
  'bad-time': 'ACCESS_LOG_BAD_TIME',
};

/**
 * A malformed line. Its `message` is the reason alone, without hint (it is what a dead letter
 * carries): `expected 15 fields, got 14`, `field 3 is not wrapped in <<<!>>>: '58.223.1.112'`,
 * `bad time '20181311132902' (field 2): month 13 is not 1-12`.
 */
export class AccessLogError extends SluiceError {
  /** Stable code per kind, e.g. `ACCESS_LOG_FIELD_COUNT`. */
  readonly code: string;
  constructor(
    readonly kind: AccessLogErrorKind,
    reason: string,
    /** The field at fault, when one is. */
    readonly field?: number,
  ) {
    // No hint: the message is the reason alone, as a dead letter carries it.
    super(reason, '');
    this.code = CODES[kind];
  }

  get reason(): string {
    return this.message;
  }
}

/** A well-formed line, by field. Ports are kept as written (the output copies them). */
export interface AccessLogRecord {
  readonly recordId: string;
  readonly userId: string;
  /** As written: `yyyyMMddHHmmss`. */
  readonly actionTime: string;
  /** The action time in epoch milliseconds, read in the parser's time zone. */
  readonly timestamp: number;
  readonly clientIp: string;
  readonly serverIp: string;
  readonly clientPort: string;
  readonly serverPort: string;
  readonly serverDomain: string;
  readonly url: string;
  readonly number: string;
  /** All 15 fields, markers removed. */
  readonly fields: readonly string[];
}

/**
 * Splits a line into its marker-wrapped fields. A field runs from an opening marker to the next
 * marker that is followed by a comma or the end of the line, so a comma inside a field (a URL's
 * query) does not split it; a field that opens its marker but reaches the next field's opening
 * marker first never closed. A field without its markers is reported with its position.
 */
export function splitFields(line: string): string[] {
  if (line === '')
    throw new AccessLogError('field-count', `expected ${FIELD_COUNT} fields, got an empty line`);
  const M = MARKER.length;
  const fields: string[] = [];
  let unwrapped: { index: number; text: string } | undefined;
  let pos = 0;
  for (;;) {
    if (line.startsWith(MARKER, pos)) {
      let close = line.indexOf(MARKER, pos + M);
      while (close !== -1 && close + M !== line.length && line.charCodeAt(close + M) !== 44 /* , */) {
        close = line.indexOf(MARKER, close + 1);
      }
      // The next field's opening marker comes first: this field never closes.
      const nextOpen = line.indexOf(NEXT_FIELD, pos + M);
      if (close === -1 || (nextOpen !== -1 && nextOpen < close)) {
        let end = nextOpen !== -1 ? nextOpen : line.indexOf(',', pos);
        if (end === -1) end = line.length;
        const text = line.slice(pos, end);
        unwrapped ??= { index: fields.length, text };
        fields.push(text);
        pos = end;
      } else {
        fields.push(line.slice(pos + M, close));
        pos = close + M;
      }
    } else {
      let comma = line.indexOf(',', pos);
      if (comma === -1) comma = line.length;
      const text = line.slice(pos, comma);
      unwrapped ??= { index: fields.length, text };
      fields.push(text);
      pos = comma;
    }
    if (pos >= line.length) break;
    pos++; // the comma
    if (pos === line.length) {
      // A trailing comma: an empty last field (unwrapped).
      unwrapped ??= { index: fields.length, text: '' };
      fields.push('');
      break;
    }
  }
  if (fields.length !== FIELD_COUNT) {
    throw new AccessLogError('field-count', `expected ${FIELD_COUNT} fields, got ${fields.length}`);
  }
  if (unwrapped) {
    throw new AccessLogError(
      'missing-marker',
      `field ${unwrapped.index} is not wrapped in ${MARKER}: '${preview(unwrapped.text)}'`,
      unwrapped.index,
    );
  }
  return fields;
}

/**
 * Parses one line. Throws {@link AccessLogError} for a malformed one. A single trailing `\n` or
 * `\r\n` (a line read from a file) is ignored.
 */
export function parseAccessLog(line: string, options: AccessLogOptions): AccessLogRecord {
  return compileParser(options)(line);
}

/** `userid|timestamp|clientIp:clientPort|serverIp:serverPort|url`. */
export function formatAccessLog(r: AccessLogRecord): string {
  return `${r.userId}|${r.timestamp}|${r.clientIp}:${r.clientPort}|${r.serverIp}:${r.serverPort}|${r.url}`;
}

/**
 * A parser bound to its options (the time zone is checked once, here): throws InvalidTimeZoneError
 * (a RangeError) for a name Intl does not know.
 */
export function compileParser(options: AccessLogOptions): (line: string) => AccessLogRecord {
  const toEpoch = zonedTimeConverter(options);
  return (line) => {
    if (typeof line !== 'string') {
      throw new AccessLogError(
        'not-a-line',
        `expected a line of text, got ${line === null ? 'null' : typeof line}`,
      );
    }
    const fields = splitFields(stripNewline(line));
    const actionTime = fields[FIELD.actionTime]!;
    return {
      recordId: fields[FIELD.recordId]!,
      userId: fields[FIELD.userId]!,
      actionTime,
      timestamp: toEpoch(actionTime),
      clientIp: fields[FIELD.clientIp]!,
      serverIp: fields[FIELD.serverIp]!,
      clientPort: fields[FIELD.clientPort]!,
      serverPort: fields[FIELD.serverPort]!,
      serverDomain: fields[FIELD.serverDomain]!,
      url: fields[FIELD.url]!,
      number: fields[FIELD.number]!,
      fields,
    };
  };
}

/**
 * The whole ETL step of case 7: line in, output line out; throws {@link AccessLogError} for a
 * malformed line. Give it to `tryMap`.
 */
export function accessLogEtl(options: AccessLogOptions): (line: string | null) => string {
  const parse = compileParser(options);
  return (line) => formatAccessLog(parse(line as string));
}

/** A time zone name Intl does not know. */
export class InvalidTimeZoneError extends SluiceError {
  readonly code = 'ACCESS_LOG_INVALID_TIME_ZONE';
  constructor(readonly timeZone: unknown) {
    super(
      `Invalid option 'timeZone': got ${JSON.stringify(timeZone)}`,
      "Accepted: an IANA time zone name such as 'Asia/Shanghai', 'Europe/Berlin' or 'UTC'",
    );
  }
}

/** Checks a time zone name and returns Intl's canonical form of it (e.g. `utc` -> `UTC`). */
export function checkTimeZone(timeZone: unknown): string {
  if (typeof timeZone !== 'string' || timeZone.trim() === '') throw new InvalidTimeZoneError(timeZone);
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone }).resolvedOptions().timeZone;
  } catch {
    throw new InvalidTimeZoneError(timeZone);
  }
}

/**
 * `yyyyMMddHHmmss` in the options' zone -> epoch ms, or AccessLogError('bad-time'). Offsets come
 * from Intl (the ICU time zone database Node ships), cached per local minute.
 */
export function zonedTimeConverter(options: AccessLogOptions): (time: string) => number {
  if (typeof options !== 'object' || options === null) throw new InvalidTimeZoneError(undefined);
  const zone = checkTimeZone(options.timeZone);
  const disambiguation = options.disambiguation ?? 'compatible';
  if (!DISAMBIGUATIONS.includes(disambiguation)) {
    throw new RangeError(
      `Invalid option 'disambiguation': got ${JSON.stringify(disambiguation)}. Accepted: ${DISAMBIGUATIONS.join(' | ')}`,
    );
  }
  if (zone === 'UTC' || zone === 'Etc/UTC' || zone === 'Etc/GMT') {
    return (time) => {
      const t = readTime(time);
      return localMs(t);
    };
  }
  const offsetAt = offsetFinder(zone);
  /** Local minute (epoch ms of the local time read as UTC) -> offset valid for the whole minute. */
  const minutes = new Map<number, number>();
  return (time) => {
    const t = readTime(time);
    const local = localMs(t);
    const minute = local - t.second * 1000;
    const cached = minutes.get(minute);
    if (cached !== undefined) return local - cached;
    const first = resolve(minute, offsetAt);
    const last = resolve(minute + 59_000, offsetAt);
    if (first.kind === 'unique' && last.kind === 'unique' && first.offset === last.offset) {
      if (minutes.size >= 100_000) minutes.clear();
      minutes.set(minute, first.offset);
      return local - first.offset;
    }
    const r = t.second === 0 ? first : resolve(local, offsetAt);
    return pick(r, local, time, zone, disambiguation);
  };
}

type Resolution =
  | { kind: 'unique'; offset: number }
  | { kind: 'ambiguous'; earlier: number; later: number }
  | { kind: 'gap'; before: number; after: number };

/** The offsets (ms) at which local time `local` (read as UTC) exists in the zone. */
function resolve(local: number, offsetAt: (epochMs: number) => number): Resolution {
  const DAY = 86_400_000;
  const before = offsetAt(local - DAY);
  const after = offsetAt(local + DAY);
  const valid = [...new Set([before, after])].filter((o) => offsetAt(local - o) === o);
  if (valid.length === 1) return { kind: 'unique', offset: valid[0]! };
  if (valid.length === 2) {
    // The larger offset gives the earlier instant.
    const [a, b] = valid as [number, number];
    return { kind: 'ambiguous', earlier: Math.max(a, b), later: Math.min(a, b) };
  }
  return { kind: 'gap', before, after };
}

function pick(r: Resolution, local: number, time: string, zone: string, how: Disambiguation): number {
  if (r.kind === 'unique') return local - r.offset;
  if (how === 'reject') {
    const why =
      r.kind === 'ambiguous'
        ? `it happened twice in ${zone} (clocks went back)`
        : `it does not exist in ${zone} (clocks jumped forward)`;
    throw new AccessLogError(
      'bad-time',
      `bad time '${preview(time)}' (field ${FIELD.actionTime}): ${why}`,
      FIELD.actionTime,
    );
  }
  if (r.kind === 'ambiguous') return local - (how === 'later' ? r.later : r.earlier);
  // A gap: `compatible` and `later` read it with the offset before the gap, which moves it forward
  // by the gap's length (as java.time does); `earlier` with the offset after it.
  return local - (how === 'earlier' ? r.after : r.before);
}

interface LocalTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

function localMs(t: LocalTime): number {
  const ms = Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute, t.second);
  // Date.UTC maps years 0-99 to 1900-1999.
  return t.year < 100 ? new Date(ms).setUTCFullYear(t.year) : ms;
}

function readTime(time: string): LocalTime {
  const bad = (why: string): never => {
    throw new AccessLogError(
      'bad-time',
      `bad time '${preview(time)}' (field ${FIELD.actionTime}): ${why}`,
      FIELD.actionTime,
    );
  };
  if (time.length !== 14) bad(`expected 14 digits yyyyMMddHHmmss, got ${time.length} characters`);
  for (let i = 0; i < 14; i++) {
    const c = time.charCodeAt(i) - 48;
    if (c < 0 || c > 9) bad(`expected 14 digits yyyyMMddHHmmss, found '${time[i]}' at position ${i}`);
  }
  const num = (from: number, to: number) => {
    let n = 0;
    for (let i = from; i < to; i++) n = n * 10 + (time.charCodeAt(i) - 48);
    return n;
  };
  const t: LocalTime = {
    year: num(0, 4),
    month: num(4, 6),
    day: num(6, 8),
    hour: num(8, 10),
    minute: num(10, 12),
    second: num(12, 14),
  };
  if (t.month < 1 || t.month > 12) bad(`month ${t.month} is not 1-12`);
  const days = daysInMonth(t.year, t.month);
  if (t.day < 1 || t.day > days) bad(`day ${t.day} is not 1-${days} in ${t.year}-${pad2(t.month)}`);
  if (t.hour > 23) bad(`hour ${t.hour} is not 0-23`);
  if (t.minute > 59) bad(`minute ${t.minute} is not 0-59`);
  if (t.second > 59) bad(`second ${t.second} is not 0-59`);
  return t;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** A function giving the zone's UTC offset (ms, local minus UTC) at an instant, through Intl. */
function offsetFinder(zone: string): (epochMs: number) => number {
  const f = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    era: 'short',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  });
  return (epochMs) => {
    // Intl works to the second: offsets are whole seconds, so drop the milliseconds.
    const whole = Math.floor(epochMs / 1000) * 1000;
    let year = 0;
    let month = 0;
    let day = 0;
    let hour = 0;
    let minute = 0;
    let second = 0;
    let bc = false;
    for (const p of f.formatToParts(whole)) {
      switch (p.type) {
        case 'year':
          year = Number(p.value);
          break;
        case 'month':
          month = Number(p.value);
          break;
        case 'day':
          day = Number(p.value);
          break;
        case 'hour':
          hour = Number(p.value);
          break;
        case 'minute':
          minute = Number(p.value);
          break;
        case 'second':
          second = Number(p.value);
          break;
        case 'era':
          bc = p.value.startsWith('B');
          break;
      }
    }
    const local = localMs({ year: bc ? 1 - year : year, month, day, hour, minute, second });
    return local - whole;
  };
}

function stripNewline(line: string): string {
  if (line.endsWith('\r\n')) return line.slice(0, -2);
  if (line.endsWith('\n')) return line.slice(0, -1);
  return line;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** At most 40 characters of a value, for reasons. */
function preview(s: string): string {
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

// ---- Sample data, for demos, tests and benchmarks ----

/** Builds an input line from its fields: each wrapped in {@link MARKER}, joined by commas. */
export function accessLogLine(fields: readonly string[]): string {
  return fields.map((f) => `${MARKER}${f}${MARKER}`).join(',');
}

/** The ways {@link sampleAccessLogLine} can break a line, one per kind of malformed input. */
export const SAMPLE_MALFORMATIONS = [
  'fields-14',
  'fields-16',
  'bad-month',
  'bad-day',
  'not-a-time',
  'no-marker',
] as const;
export type SampleMalformation = (typeof SAMPLE_MALFORMATIONS)[number];

const DOMAINS = ['www.sogou.com', 'news.example.cn', 'shop.example.com', 'video.example.net'] as const;
const PATHS = [
  '/web?query=%E5%8F%8C%E5%8D%81%E4%B8%80',
  '/item/4471?ref=home,top',
  '/watch?v=9&t=30',
  '/',
] as const;
/** 2018-11-11 00:00:00, written as a local time. */
const SAMPLE_DAY = Date.UTC(2018, 10, 11);

/**
 * The `n`-th line of a deterministic access log (same `n`, same line): record id `n`, users
 * 1000-1999, action times one per second from 2018-11-11 00:00:00 (local time of whatever zone the
 * reader uses), IPs and ports derived from `n`, URLs (some with commas in the query). With
 * `malformed`, the line is broken that way (see {@link SAMPLE_MALFORMATIONS}).
 */
export function sampleAccessLogLine(n: number, malformed?: SampleMalformation): string {
  const h = Math.imul(n + 1, 2654435761) >>> 0; // a cheap spread of n
  const t = new Date(SAMPLE_DAY + (n % 86_400) * 1000);
  const time =
    `${t.getUTCFullYear()}${pad2(t.getUTCMonth() + 1)}${pad2(t.getUTCDate())}` +
    `${pad2(t.getUTCHours())}${pad2(t.getUTCMinutes())}${pad2(t.getUTCSeconds())}`;
  const domain = DOMAINS[h % DOMAINS.length]!;
  const fields = [
    String(n),
    String(1000 + (h % 1000)),
    time,
    `58.${(h >>> 8) & 255}.${(h >>> 16) & 255}.${1 + (h % 254)}`,
    `202.102.${(h >>> 4) & 255}.${1 + ((h >>> 12) % 254)}`,
    String(1024 + (h % 64_000)),
    h % 5 === 0 ? '443' : '80',
    domain,
    '',
    '',
    '',
    '',
    '',
    `http://${domain}${PATHS[(h >>> 3) % PATHS.length]!}`,
    String(h % 10),
  ];
  switch (malformed) {
    case undefined:
      break;
    case 'fields-14':
      fields.splice(9, 1);
      break;
    case 'fields-16':
      fields.push('extra');
      break;
    case 'bad-month':
      fields[2] = `${time.slice(0, 4)}13${time.slice(6)}`;
      break;
    case 'bad-day':
      fields[2] = `${time.slice(0, 4)}0431${time.slice(8)}`;
      break;
    case 'not-a-time':
      fields[2] = `${time.slice(0, 4)}-${time.slice(4, 6)}-${time.slice(6, 8)}`;
      break;
    case 'no-marker':
      return accessLogLine(fields).replace(`${MARKER}${fields[3]}${MARKER}`, fields[3]!);
  }
  return accessLogLine(fields);
}
