import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeadLetter } from '../../../src/core/bad-records.js';
import { InMemorySink } from '../../../src/core/memory-sink.js';
import { TestDriver } from '../../../src/core/testing/driver.js';
import { SluiceError } from '../../../src/core/errors.js';
import {
  AccessLogError,
  FIELD_COUNT,
  InvalidTimeZoneError,
  MARKER,
  SAMPLE_MALFORMATIONS,
  accessLogEtl,
  accessLogLine,
  checkTimeZone,
  compileParser,
  formatAccessLog,
  parseAccessLog,
  sampleAccessLogLine,
  splitFields,
  type AccessLogErrorKind,
  type Disambiguation,
  type SampleMalformation,
} from '../../../examples/lib/access-log.js';

const wrap = (fields: readonly string[]) => fields.map((f) => `${MARKER}${f}${MARKER}`).join(',');

/** The fields of case 7's example line (a Sogou search log of 11.11.2018). */
const EXAMPLE_FIELDS = [
  '3111',
  '238',
  '20181111132902',
  '58.223.1.112',
  '202.102.92.18',
  '59563',
  '80',
  'www.sogou.com',
  '',
  '',
  '',
  '',
  '',
  'http://www.sogou.com/web?query=%E5%8F%8C%E5%8D%81%E4%B8%80',
  '1',
] as const;
const EXAMPLE = wrap(EXAMPLE_FIELDS);

const withField = (i: number, value: string) => wrap(EXAMPLE_FIELDS.map((f, j) => (j === i ? value : f)));
const withTime = (time: string) => withField(2, time);

/** Epoch ms of a UTC wall time, for expected values written independently of the parser. */
const utc = (y: number, mo: number, d: number, h: number, mi: number, s: number) =>
  Date.UTC(y, mo - 1, d, h, mi, s);

function rejects(fn: () => unknown, kind: AccessLogErrorKind, reason: string | RegExp): AccessLogError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof AccessLogError, `expected an AccessLogError, got ${String(caught)}`);
  assert.equal(caught.kind, kind);
  if (typeof reason === 'string') assert.equal(caught.message, reason);
  else assert.match(caught.message, reason);
  assert.equal(caught.reason, caught.message);
  return caught;
}

describe('access-log parser: well-formed lines', () => {
  it('reads the 15 fields by position and the time in Asia/Shanghai (UTC+8)', () => {
    const r = parseAccessLog(EXAMPLE, { timeZone: 'Asia/Shanghai' });
    assert.equal(r.recordId, '3111');
    assert.equal(r.userId, '238');
    assert.equal(r.actionTime, '20181111132902');
    assert.equal(r.timestamp, utc(2018, 11, 11, 5, 29, 2));
    assert.equal(r.timestamp, 1541914142000);
    assert.equal(r.clientIp, '58.223.1.112');
    assert.equal(r.serverIp, '202.102.92.18');
    assert.equal(r.clientPort, '59563');
    assert.equal(r.serverPort, '80');
    assert.equal(r.serverDomain, 'www.sogou.com');
    assert.equal(r.url, 'http://www.sogou.com/web?query=%E5%8F%8C%E5%8D%81%E4%B8%80');
    assert.equal(r.number, '1');
    assert.deepEqual(r.fields, EXAMPLE_FIELDS);
  });

  it('formats userid|timestamp|clientIp:clientPort|serverIp:serverPort|url', () => {
    const etl = accessLogEtl({ timeZone: 'Asia/Shanghai' });
    assert.equal(
      etl(EXAMPLE),
      '238|1541914142000|58.223.1.112:59563|202.102.92.18:80|http://www.sogou.com/web?query=%E5%8F%8C%E5%8D%81%E4%B8%80',
    );
    assert.equal(
      formatAccessLog(parseAccessLog(EXAMPLE, { timeZone: 'UTC' })).split('|')[1],
      '1541942942000',
    );
  });

  it('gives the same instant 8 hours apart for UTC and Asia/Shanghai, and follows the zone, not the process TZ', () => {
    const saved = process.env.TZ;
    try {
      const inUtc = parseAccessLog(EXAMPLE, { timeZone: 'UTC' }).timestamp;
      process.env.TZ = 'America/Los_Angeles';
      const inShanghai = parseAccessLog(EXAMPLE, { timeZone: 'Asia/Shanghai' }).timestamp;
      assert.equal(inUtc, utc(2018, 11, 11, 13, 29, 2));
      assert.equal(inUtc - inShanghai, 8 * 3600_000);
      process.env.TZ = 'Asia/Tokyo';
      assert.equal(parseAccessLog(EXAMPLE, { timeZone: 'UTC' }).timestamp, inUtc);
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  it('keeps commas inside a marker-wrapped field (a URL query) in the field', () => {
    const url = 'http://example.com/search?q=a,b&tags=x,y,z';
    const r = parseAccessLog(withField(13, url), { timeZone: 'UTC' });
    assert.equal(r.url, url);
    assert.equal(r.number, '1');
  });

  it('accepts empty fields 8-12 and empty values anywhere but the time', () => {
    const line = wrap(EXAMPLE_FIELDS.map((f, i) => (i === 2 ? f : '')));
    const r = parseAccessLog(line, { timeZone: 'UTC' });
    assert.equal(formatAccessLog(r), `|${utc(2018, 11, 11, 13, 29, 2)}|:|:|`);
  });

  it('ignores one trailing newline (LF or CRLF), as lines read from a file carry', () => {
    const expected = parseAccessLog(EXAMPLE, { timeZone: 'UTC' });
    assert.deepEqual(parseAccessLog(`${EXAMPLE}\n`, { timeZone: 'UTC' }), expected);
    assert.deepEqual(parseAccessLog(`${EXAMPLE}\r\n`, { timeZone: 'UTC' }), expected);
  });

  it('reads leap days and the last second of a year', () => {
    const p = compileParser({ timeZone: 'UTC' });
    assert.equal(p(withTime('20160229000000')).timestamp, utc(2016, 2, 29, 0, 0, 0));
    assert.equal(p(withTime('20000229120000')).timestamp, utc(2000, 2, 29, 12, 0, 0));
    assert.equal(p(withTime('20181231235959')).timestamp, utc(2018, 12, 31, 23, 59, 59));
  });

  it('canonicalises zone names the way Intl does', () => {
    assert.equal(checkTimeZone('asia/shanghai'), 'Asia/Shanghai');
    assert.equal(checkTimeZone('Etc/UTC'), 'UTC');
    assert.equal(checkTimeZone('US/Eastern'), 'America/New_York');
  });
});

describe('access-log parser: daylight saving time', () => {
  const ny = compileParser({ timeZone: 'America/New_York' });
  const at = (p: ReturnType<typeof compileParser>, time: string) => p(withTime(time)).timestamp;

  it('uses EST (UTC-5) in winter and EDT (UTC-4) in summer', () => {
    assert.equal(at(ny, '20210115120000'), utc(2021, 1, 15, 17, 0, 0));
    assert.equal(at(ny, '20210715120000'), utc(2021, 7, 15, 16, 0, 0));
  });

  it('reads the seconds on both sides of the spring-forward jump (02:00 EST -> 03:00 EDT)', () => {
    assert.equal(at(ny, '20210314015959'), utc(2021, 3, 14, 6, 59, 59));
    assert.equal(at(ny, '20210314030000'), utc(2021, 3, 14, 7, 0, 0));
    // One second of wall time apart on the clock is one second apart in real time.
    assert.equal(at(ny, '20210314030000') - at(ny, '20210314015959'), 1000);
  });

  it('moves a nonexistent local time (02:30 on the spring-forward day) forward by the gap by default, as java.time does', () => {
    assert.equal(at(ny, '20210314023000'), utc(2021, 3, 14, 7, 30, 0)); // = 03:30 EDT
  });

  it('reads an ambiguous local time (01:30 on the fall-back day) as the earlier instant (EDT) by default', () => {
    assert.equal(at(ny, '20211107013000'), utc(2021, 11, 7, 5, 30, 0));
    assert.equal(at(ny, '20211107020000'), utc(2021, 11, 7, 7, 0, 0)); // 02:00 EST, after the overlap
    assert.equal(at(ny, '20211107005959'), utc(2021, 11, 7, 4, 59, 59));
  });

  it('applies the earlier / later / reject choices to gaps and overlaps', () => {
    const cases: [Disambiguation, string, number | RegExp][] = [
      ['earlier', '20210314023000', utc(2021, 3, 14, 6, 30, 0)],
      ['later', '20210314023000', utc(2021, 3, 14, 7, 30, 0)],
      ['earlier', '20211107013000', utc(2021, 11, 7, 5, 30, 0)],
      ['later', '20211107013000', utc(2021, 11, 7, 6, 30, 0)],
      [
        'reject',
        '20210314023000',
        /^bad time '20210314023000' \(field 2\): it does not exist in America\/New_York/,
      ],
      [
        'reject',
        '20211107013000',
        /^bad time '20211107013000' \(field 2\): it happened twice in America\/New_York/,
      ],
      ['reject', '20210715120000', utc(2021, 7, 15, 16, 0, 0)],
    ];
    for (const [disambiguation, time, expected] of cases) {
      const p = compileParser({ timeZone: 'America/New_York', disambiguation });
      if (typeof expected === 'number') assert.equal(at(p, time), expected, `${disambiguation} ${time}`);
      else rejects(() => p(withTime(time)), 'bad-time', expected);
    }
  });

  it('handles Europe/Berlin transitions (at 01:00 UTC) and Lord Howe Island’s half-hour DST', () => {
    const berlin = compileParser({ timeZone: 'Europe/Berlin' });
    assert.equal(at(berlin, '20180325015959'), utc(2018, 3, 25, 0, 59, 59));
    assert.equal(at(berlin, '20180325030000'), utc(2018, 3, 25, 1, 0, 0));
    assert.equal(at(berlin, '20181028023000'), utc(2018, 10, 28, 0, 30, 0)); // CEST, the earlier
    // Lord Howe: +10:30 standard, +11:00 in summer; the clocks go from 02:00 to 02:30 on 2021-10-03.
    const lordHowe = compileParser({ timeZone: 'Australia/Lord_Howe', disambiguation: 'reject' });
    assert.equal(at(lordHowe, '20211003015959'), utc(2021, 10, 2, 15, 29, 59));
    rejects(() => lordHowe(withTime('20211003021500')), 'bad-time', /does not exist in Australia\/Lord_Howe/);
    assert.equal(at(lordHowe, '20211003023000'), utc(2021, 10, 2, 15, 30, 0));
  });

  it('knows that China had DST from 1986 to 1991 (1988-04-17 02:30 never happened in Asia/Shanghai)', () => {
    const sh = compileParser({ timeZone: 'Asia/Shanghai', disambiguation: 'reject' });
    assert.equal(at(sh, '19880717120000'), utc(1988, 7, 17, 3, 0, 0)); // UTC+9 in summer 1988
    rejects(() => sh(withTime('19880417023000')), 'bad-time', /does not exist in Asia\/Shanghai/);
  });

  it('gives the same answer for every second of a minute whatever order the minutes are seen in (the per-minute cache)', () => {
    const times: string[] = [];
    for (const hm of ['0130', '0159', '0200', '0230', '0300']) {
      for (const day of ['20210314', '20211107']) {
        for (const s of ['00', '01', '30', '59']) times.push(`${day}${hm}${s}`);
      }
    }
    const fresh = (t: string) => at(compileParser({ timeZone: 'America/New_York' }), t);
    const shared = compileParser({ timeZone: 'America/New_York' });
    for (const t of [...times, ...times.reverse()]) assert.equal(at(shared, t), fresh(t), t);
  });
});

describe('access-log parser: malformed lines, each with its reason', () => {
  const p = compileParser({ timeZone: 'Asia/Shanghai' });

  it('a line with 14 fields: "expected 15 fields, got 14"', () => {
    rejects(() => p(wrap(EXAMPLE_FIELDS.slice(0, 14))), 'field-count', 'expected 15 fields, got 14');
    assert.equal(FIELD_COUNT, 15);
  });

  it('a line with 16 fields: "expected 15 fields, got 16"', () => {
    const e = rejects(
      () => p(wrap([...EXAMPLE_FIELDS, 'extra'])),
      'field-count',
      'expected 15 fields, got 16',
    );
    assert.equal(e.code, 'ACCESS_LOG_FIELD_COUNT');
  });

  it('an empty line, a line of plain text, a trailing comma', () => {
    rejects(() => p(''), 'field-count', 'expected 15 fields, got an empty line');
    rejects(() => p('hello world'), 'field-count', 'expected 15 fields, got 1');
    rejects(() => p(`${EXAMPLE},`), 'field-count', 'expected 15 fields, got 16');
  });

  it('a field without its markers, at 15 fields: says which field and shows it', () => {
    const line = EXAMPLE.replace(`${MARKER}58.223.1.112${MARKER}`, '58.223.1.112');
    const e = rejects(() => p(line), 'missing-marker', "field 3 is not wrapped in <<<!>>>: '58.223.1.112'");
    assert.equal(e.field, 3);
    assert.equal(e.code, 'ACCESS_LOG_MISSING_MARKER');
  });

  it('a field that opens its marker but never closes it', () => {
    const line = EXAMPLE.replace(`80${MARKER}`, '80');
    rejects(() => p(line), 'missing-marker', /^field 6 is not wrapped in <<<!>>>: '<<<!>>>80'$/);
  });

  it('a comma-separated line without any markers (the same 15 values, unwrapped)', () => {
    rejects(() => p(EXAMPLE_FIELDS.join(',')), 'missing-marker', "field 0 is not wrapped in <<<!>>>: '3111'");
  });

  it('a Kafka record without a value (null)', () => {
    const e = rejects(
      () => accessLogEtl({ timeZone: 'UTC' })(null),
      'not-a-line',
      'expected a line of text, got null',
    );
    assert.equal(e.code, 'ACCESS_LOG_NOT_A_LINE');
  });

  it('bad times: the reason quotes the time and says what is wrong', () => {
    const cases: [string, string][] = [
      ['20181311132902', "bad time '20181311132902' (field 2): month 13 is not 1-12"],
      ['20180011132902', "bad time '20180011132902' (field 2): month 0 is not 1-12"],
      ['20181100132902', "bad time '20181100132902' (field 2): day 0 is not 1-30 in 2018-11"],
      ['20180431132902', "bad time '20180431132902' (field 2): day 31 is not 1-30 in 2018-04"],
      ['20190229000000', "bad time '20190229000000' (field 2): day 29 is not 1-28 in 2019-02"],
      ['19000229000000', "bad time '19000229000000' (field 2): day 29 is not 1-28 in 1900-02"],
      ['20181111242902', "bad time '20181111242902' (field 2): hour 24 is not 0-23"],
      ['20181111136002', "bad time '20181111136002' (field 2): minute 60 is not 0-59"],
      ['20181111132960', "bad time '20181111132960' (field 2): second 60 is not 0-59"],
      [
        '2018111113290',
        "bad time '2018111113290' (field 2): expected 14 digits yyyyMMddHHmmss, got 13 characters",
      ],
      [
        '201811111329021',
        "bad time '201811111329021' (field 2): expected 14 digits yyyyMMddHHmmss, got 15 characters",
      ],
      ['', "bad time '' (field 2): expected 14 digits yyyyMMddHHmmss, got 0 characters"],
      [
        '2018-11-11T132',
        "bad time '2018-11-11T132' (field 2): expected 14 digits yyyyMMddHHmmss, found '-' at position 4",
      ],
      [
        '2018111113290x',
        "bad time '2018111113290x' (field 2): expected 14 digits yyyyMMddHHmmss, found 'x' at position 13",
      ],
    ];
    for (const [time, reason] of cases) {
      const e = rejects(() => p(withTime(time)), 'bad-time', reason);
      assert.equal(e.field, 2);
      assert.equal(e.code, 'ACCESS_LOG_BAD_TIME');
    }
  });

  it('a long bad value is shortened in the reason', () => {
    const e = rejects(() => p(withTime('9'.repeat(100))), 'bad-time', /^bad time '9{37}\.\.\.' \(field 2\)/);
    assert.ok(e.message.length < 120);
  });

  it('the field count is checked before markers and time', () => {
    const line = wrap(EXAMPLE_FIELDS.slice(0, 14).map((f, i) => (i === 2 ? 'not a time' : f)));
    rejects(() => p(line), 'field-count', 'expected 15 fields, got 14');
  });

  it('splitFields reports the same reasons on its own', () => {
    assert.deepEqual(splitFields(EXAMPLE), [...EXAMPLE_FIELDS]);
    rejects(() => splitFields('a,b'), 'field-count', 'expected 15 fields, got 2');
  });
});

describe('access-log parser: options', () => {
  it('refuses a time zone Intl does not know, an offset, an empty or missing zone', () => {
    for (const timeZone of ['Mars/Olympus', '+08:00', '', '   ', undefined, 8]) {
      assert.throws(
        () => compileParser({ timeZone } as never),
        (e: unknown) =>
          e instanceof InvalidTimeZoneError &&
          e instanceof SluiceError &&
          e.code === 'ACCESS_LOG_INVALID_TIME_ZONE' &&
          /^Accepted: an IANA time zone name/.test(e.hint) &&
          /an IANA time zone name such as 'Asia\/Shanghai'/.test(e.message),
        String(timeZone),
      );
    }
  });

  it('refuses an unknown disambiguation', () => {
    assert.throws(
      () => compileParser({ timeZone: 'UTC', disambiguation: 'latest' as never }),
      /Invalid option 'disambiguation': got "latest". Accepted: compatible \| earlier \| later \| reject/,
    );
  });
});

describe('access-log parser in a pipeline', () => {
  it('tryMap sends malformed lines to the dead letters with the parser’s reason and keeps the good ones', async () => {
    const dlq = new InMemorySink<DeadLetter>();
    const driver = new TestDriver();
    const input = driver.input<string>({ name: 'lines' });
    const out = driver.collect(
      input.stream.tryMap(accessLogEtl({ timeZone: 'Asia/Shanghai' }), {
        name: 'etl',
        badRecords: { policy: 'dead-letter', deadLetter: dlq },
      }),
    );
    await driver.start();
    input.push([EXAMPLE, wrap(EXAMPLE_FIELDS.slice(0, 14)), withTime('20181311132902'), withField(1, '239')]);
    const info = await driver.advance();
    await driver.stop();
    assert.deepEqual(out.last(), [
      '238|1541914142000|58.223.1.112:59563|202.102.92.18:80|http://www.sogou.com/web?query=%E5%8F%8C%E5%8D%81%E4%B8%80',
      '239|1541914142000|58.223.1.112:59563|202.102.92.18:80|http://www.sogou.com/web?query=%E5%8F%8C%E5%8D%81%E4%B8%80',
    ]);
    assert.deepEqual(
      dlq.records.map((l) => l.reason),
      ['expected 15 fields, got 14', "bad time '20181311132902' (field 2): month 13 is not 1-12"],
    );
    assert.deepEqual(info.badRecords, [{ name: 'etl', skipped: 0, deadLettered: 2 }]);
  });
});

describe('sample access-log lines', () => {
  it('are deterministic, well-formed unless asked otherwise, and break each way as named', () => {
    const etl = accessLogEtl({ timeZone: 'Asia/Shanghai' });
    assert.equal(sampleAccessLogLine(42), sampleAccessLogLine(42));
    for (let i = 0; i < 2000; i++) assert.doesNotThrow(() => etl(sampleAccessLogLine(i)), `line ${i}`);
    // Line 0: 2018-11-11 00:00:00 in Shanghai.
    assert.equal(
      etl(sampleAccessLogLine(0)),
      '1761|1541865600000|58.121.55.126:36785|202.102.155.102:80|http://news.example.cn/watch?v=9&t=30',
    );
    const kinds: Record<SampleMalformation, AccessLogErrorKind> = {
      'fields-14': 'field-count',
      'fields-16': 'field-count',
      'bad-month': 'bad-time',
      'bad-day': 'bad-time',
      'not-a-time': 'bad-time',
      'no-marker': 'missing-marker',
    };
    for (const m of SAMPLE_MALFORMATIONS) rejects(() => etl(sampleAccessLogLine(7, m)), kinds[m], /./);
    assert.equal(accessLogLine(['a', '', 'b']), '<<<!>>>a<<<!>>>,<<<!>>><<<!>>>,<<<!>>>b<<<!>>>');
  });
});
