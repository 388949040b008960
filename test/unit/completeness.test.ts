import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  backoffSeconds,
  decide,
  missingSeries,
  type CompletenessInput,
  type SeriesAttempts,
} from '../../src/domain/completeness.js';

const T0 = new Date('2026-11-23T10:00:00Z');
const at = (s: number) => new Date(T0.getTime() + s * 1000);
const config = { quietPeriodSeconds: 60, requireMpps: false, failAfterHours: 24, maxAttempts: 3, backoffSeconds: 10 };

function input(over: Partial<CompletenessInput>): CompletenessInput {
  return {
    expected: [],
    received: new Map(),
    mppsStatus: null,
    scannerAnswered: true,
    lastActivity: T0,
    attempts: new Map(),
    now: at(1),
    config,
    ...over,
  };
}
const set = (...u: string[]) => new Set(u);

describe('completeness', () => {
  test('missing per series: UIDs, counts, level', () => {
    const m = missingSeries(
      [
        { seriesInstanceUid: '1.1', sopInstanceUids: ['1.1.1', '1.1.2'], seriesNumber: 1 },
        { seriesInstanceUid: '1.2', sopInstanceUids: [], scannerCount: 4 },
        { seriesInstanceUid: '1.3', sopInstanceUids: [], scannerCount: 2 },
        { seriesInstanceUid: '1.4', sopInstanceUids: ['1.4.1'], scannerCount: 1 },
      ],
      new Map([
        ['1.1', set('1.1.1')],
        ['1.3', set('1.3.1')],
        ['1.4', set('1.4.1')],
      ]),
    );
    assert.deepEqual(
      m.map((x) => [x.seriesInstanceUid, x.level, x.missing, x.expected, x.sopInstanceUids]),
      [
        ['1.1', 'IMAGE', 1, 2, ['1.1.2']],
        ['1.2', 'SERIES', 4, 4, []],
        ['1.3', 'SERIES', 1, 2, []],
      ],
    );
  });

  test('MPPS COMPLETED and everything here: finished', () => {
    const d = decide(
      input({
        expected: [{ seriesInstanceUid: '1.1', sopInstanceUids: ['1.1.1'] }],
        received: new Map([['1.1', set('1.1.1')]]),
        mppsStatus: 'COMPLETED',
      }),
    );
    assert.deepEqual(d, { kind: 'finished' });
  });

  test('MPPS COMPLETED, images missing: retrieve; IN PROGRESS and complete: wait', () => {
    const exp = [{ seriesInstanceUid: '1.1', sopInstanceUids: ['1.1.1', '1.1.2'] }];
    const d = decide(input({ expected: exp, received: new Map([['1.1', set('1.1.1')]]), mppsStatus: 'COMPLETED' }));
    assert.equal(d.kind, 'retrieve');
    const w = decide(
      input({ expected: exp, received: new Map([['1.1', set('1.1.1', '1.1.2')]]), mppsStatus: 'IN PROGRESS' }),
    );
    assert.equal(w.kind, 'wait');
  });

  test('DISCONTINUED fails with the series counts', () => {
    const d = decide(
      input({
        expected: [
          { seriesInstanceUid: '1.1', sopInstanceUids: ['1.1.1'] },
          { seriesInstanceUid: '1.2', sopInstanceUids: ['1.2.1'] },
        ],
        received: new Map([['1.1', set('1.1.1')]]),
        mppsStatus: 'DISCONTINUED',
      }),
    );
    assert.deepEqual(d, {
      kind: 'failed',
      reason: 'MPPS DISCONTINUED (1 of 2 series received; received images archived)',
    });
  });

  test('no MPPS: quiet period, and only when the scanner answered; requireMpps waits', () => {
    const base = {
      expected: [{ seriesInstanceUid: '1.1', sopInstanceUids: [], scannerCount: 1 }],
      received: new Map([['1.1', set('1.1.1')]]),
    };
    assert.equal(decide(input({ ...base, now: at(30) })).kind, 'wait');
    assert.equal(decide(input({ ...base, now: at(60) })).kind, 'finished');
    assert.equal(decide(input({ ...base, now: at(60), scannerAnswered: false })).kind, 'wait');
    assert.equal(decide(input({ ...base, now: at(60), config: { ...config, requireMpps: true } })).kind, 'wait');
  });

  test('retries back off, then fail with the numbers and the status', () => {
    const exp = [{ seriesInstanceUid: '1.4', seriesNumber: 4, sopInstanceUids: [], scannerCount: 176 }];
    const received = new Map([['1.4', new Set(Array.from({ length: 164 }, (_, i) => `1.4.${i}`))]]);
    const a = (n: number, s: number): Map<string, SeriesAttempts> =>
      new Map([
        [
          '1.4',
          {
            attempts: n,
            lastAt: at(s),
            lastFailed: true,
            lastStatus: 0xa801,
            lastError: '0xA801 move destination unknown',
          },
        ],
      ]);
    assert.equal(decide(input({ expected: exp, received, attempts: a(1, 0), now: at(5) })).kind, 'wait');
    assert.equal(decide(input({ expected: exp, received, attempts: a(1, 0), now: at(10) })).kind, 'retrieve');
    assert.equal(decide(input({ expected: exp, received, attempts: a(2, 0), now: at(15) })).kind, 'wait');
    assert.deepEqual(decide(input({ expected: exp, received, attempts: a(3, 0), now: at(15) })), {
      kind: 'failed',
      reason: 'series 4: 12 of 176 missing after 3 C-MOVE attempts: 0xA801 move destination unknown',
    });
    assert.equal(backoffSeconds(30, { ...config, maxBackoffSeconds: 600 }), 600);
  });

  test('no progress for 24 h since the last activity, not since creation', () => {
    const exp = [{ seriesInstanceUid: '1.1', sopInstanceUids: ['1.1.1', '1.1.2'] }];
    const received = new Map([['1.1', set('1.1.1')]]);
    const last = at(3600);
    assert.equal(
      decide(
        input({ expected: exp, received, lastActivity: last, now: at(3600 + 23 * 3600), mppsStatus: 'IN PROGRESS' }),
      ).kind,
      'retrieve',
    );
    const d = decide(
      input({ expected: exp, received, lastActivity: last, now: at(3600 + 24 * 3600), mppsStatus: 'IN PROGRESS' }),
    );
    assert.deepEqual(d, {
      kind: 'failed',
      reason: `no progress for 24 h since ${last.toISOString()}; 1 of 2 expected images missing in 1 series`,
    });
  });

  test('no retrieve while images are still arriving; a wake-up time is given', () => {
    const exp = [{ seriesInstanceUid: '1.1', sopInstanceUids: ['1.1.1', '1.1.2'] }];
    const received = new Map([['1.1', set('1.1.1')]]);
    const cfg = { ...config, settleSeconds: 5, quietSeconds: 5 };
    const d = decide(input({ expected: exp, received, lastInstance: at(0), now: at(2), config: cfg }));
    assert.equal(d.kind, 'wait');
    assert.deepEqual(d.kind === 'wait' && d.until, at(5));
    assert.equal(
      decide(input({ expected: exp, received, lastInstance: at(0), now: at(5), config: cfg })).kind,
      'retrieve',
    );
  });

  test('after the MPPS the scanner gets quietSeconds to start sending its queue, not settleSeconds', () => {
    const exp = [{ seriesInstanceUid: '1.1', sopInstanceUids: ['1.1.1', '1.1.2'] }];
    const cfg = { ...config, settleSeconds: 5, quietSeconds: 0.5 };
    const base = { expected: exp, mppsStatus: 'COMPLETED' as const, lastMpps: at(10), config: cfg };
    const d = decide(input({ ...base, now: at(10.2) }));
    assert.deepEqual(d.kind === 'wait' && [d.why, d.until], ['MPPS just reported', at(10.5)]);
    // An image after the MPPS moves the wake-up time on; nothing new since: retrieve.
    const later = decide(
      input({ ...base, received: new Map([['1.1', set('1.1.1')]]), lastInstance: at(10.4), now: at(10.6) }),
    );
    assert.deepEqual(later.kind === 'wait' && [later.why, later.until], ['images still arriving', at(10.9)]);
    assert.equal(decide(input({ ...base, now: at(10.5) })).kind, 'retrieve', 'half a second after the N-SET');
    assert.equal(
      decide(input({ ...base, lastMpps: undefined, now: at(10.2) })).kind,
      'retrieve',
      'no MPPS, no image: at once',
    );
  });

  test('MPPS COMPLETED, images missing, the scanner quiet and not connected: retrieve at once, settle or not', () => {
    const exp = [{ seriesInstanceUid: '1.1', sopInstanceUids: ['1.1.1', '1.1.2'] }];
    const received = new Map([['1.1', set('1.1.1')]]);
    const cfg = { ...config, settleSeconds: 3600, quietSeconds: 1 };
    const d = decide(
      input({
        expected: exp,
        received,
        mppsStatus: 'COMPLETED',
        lastInstance: at(0),
        lastMpps: at(1),
        now: at(2),
        scannerSending: false,
        config: cfg,
      }),
    );
    assert.deepEqual(d.kind === 'retrieve' && d.missing.map((m) => m.sopInstanceUids), [['1.1.2']]);
  });

  test('an open association of the scanner storing the study holds the retrieve, at most settleSeconds', () => {
    const exp = [{ seriesInstanceUid: '1.1', sopInstanceUids: ['1.1.1', '1.1.2'] }];
    const received = new Map([['1.1', set('1.1.1')]]);
    const cfg = { ...config, settleSeconds: 30, quietSeconds: 1 };
    const base = { expected: exp, received, mppsStatus: 'COMPLETED' as const, lastInstance: at(0), lastMpps: at(0) };
    const sending = decide(input({ ...base, now: at(10), scannerSending: true, config: cfg }));
    assert.deepEqual(sending.kind === 'wait' && [sending.why, sending.until], ['the scanner is still sending', at(30)]);
    assert.equal(
      decide(input({ ...base, now: at(30), scannerSending: true, config: cfg })).kind,
      'retrieve',
      'an association left open and idle holds it settleSeconds at most',
    );
    assert.equal(decide(input({ ...base, now: at(10), config: cfg })).kind, 'retrieve', 'once it closed: at once');
    assert.equal(
      decide(input({ ...base, now: at(0), scannerSending: true, config: { ...config, settleSeconds: 0 } })).kind,
      'retrieve',
      'settleSeconds 0: never wait',
    );
    const capped = decide(input({ ...base, now: at(2), config: { ...config, settleSeconds: 3, quietSeconds: 10 } }));
    assert.equal(capped.kind === 'wait' && capped.until?.getTime(), at(3).getTime(), 'quietSeconds capped by settle');
  });

  test('nothing expected yet: wait', () => {
    assert.equal(decide(input({ now: at(1000) })).kind, 'wait');
  });
});
