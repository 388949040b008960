import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock } from '../../src/dimse/clock.js';
import {
  ACTIONS,
  EVENT_NAMES,
  NEXT_STATES,
  STATES,
  TRANSITIONS,
  type Action,
  type Event,
  type State,
} from '../../src/dimse/fsm.js';
import {
  encodeAssociateAc,
  encodeAssociateRq,
  type AssociateAc,
  type AssociateRq,
} from '../../src/dimse/associatePdu.js';
import { encodeAbort, encodeReject, encodeReleaseRp, encodeReleaseRq, pdataPdu } from '../../src/dimse/pdu.js';
import { UpperLayer, type AbortInfo } from '../../src/dimse/upperLayer.js';
import { fakeLog } from '../helpers/log.js';
import { associateRq } from '../helpers/associateRq.js';

const ARTIM = 30_000;
const IDLE = 60_000;

const rq: AssociateRq = associateRq();
const ac: AssociateAc = {
  ...rq,
  presentationContexts: [{ id: 1, result: 0, transferSyntax: '1.2.840.10008.1.2' }],
};

/** Bytes (or calls) that make each event happen. */
const PDUS: Partial<Record<Event, Buffer>> = {
  Evt3: encodeAssociateAc(ac),
  Evt4: encodeReject({ result: 1, source: 1, reason: 1 }),
  Evt6: encodeAssociateRq(rq),
  Evt10: pdataPdu(1, 0x03, Buffer.alloc(8)),
  Evt12: encodeReleaseRq(),
  Evt13: encodeReleaseRp(),
  Evt16: encodeAbort({ source: 0, reason: 0 }),
  Evt19: Buffer.from([0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0]),
};

interface Harness {
  ul: UpperLayer;
  /** Whether the user answers indications at once (set-up); the per-event checks turn it off. */
  answer: { accept?: boolean; release?: boolean };
  clock: ManualClock;
  written: Buffer[];
  ended: number;
  destroyed: number;
  connects: number;
  transitions: Array<{ from: State; event: Event; action: Action; to: State }>;
  told: string[];
  aborts: AbortInfo[];
}

/** An upper layer over a fake transport; `answer` says whether the user answers indications at once. */
function harness(role: 'acceptor' | 'requestor', answer: { accept?: boolean; release?: boolean } = {}): Harness {
  const clock = new ManualClock();
  const h = {
    answer,
    clock,
    written: [],
    ended: 0,
    destroyed: 0,
    connects: 0,
    transitions: [],
    told: [],
    aborts: [],
  } as unknown as Harness;
  h.ul = new UpperLayer(
    {
      write: (b) => h.written.push(Buffer.from(b)),
      end: () => h.ended++,
      destroy: () => h.destroyed++,
      connect: () => h.connects++,
    },
    {
      associateIndication: () => {
        h.told.push('associate-indication');
        if (h.answer.accept) h.ul.accept(ac, 16384);
      },
      associateConfirmation: (a) => h.told.push('ac' in a ? 'associate-accepted' : 'associate-rejected'),
      pdv: () => h.told.push('pdv'),
      releaseIndication: () => {
        h.told.push('release-indication');
        if (h.answer.release) h.ul.releaseResponse();
      },
      releaseConfirmation: () => h.told.push('release-confirmation'),
      abortIndication: (a) => {
        h.told.push('abort-indication');
        h.aborts.push(a);
      },
      closed: () => h.told.push('closed'),
    },
    {
      role,
      clock,
      artimMs: ARTIM,
      idleMs: IDLE,
      log: fakeLog().log,
      logMeta: {},
      onTransition: (t) => h.transitions.push(t),
    },
  );
  return h;
}

/** A fresh upper layer in `state`, reached through the public primitives and real PDUs only. */
function inState(state: State): Harness {
  const requestorStates: State[] = ['Sta4', 'Sta5', 'Sta9', 'Sta11'];
  const acceptorFirst = !requestorStates.includes(state);
  const h = harness(acceptorFirst ? 'acceptor' : 'requestor', { accept: state !== 'Sta3' });
  const { ul } = h;
  const steps: Record<State, () => void> = {
    Sta1: () => undefined,
    Sta2: () => ul.transportIndication(),
    Sta3: () => (ul.transportIndication(), ul.input(PDUS.Evt6!)),
    Sta4: () => ul.associate(rq),
    Sta5: () => (ul.associate(rq), ul.transportConfirmation()),
    Sta6: () => (ul.transportIndication(), ul.input(PDUS.Evt6!)),
    Sta7: () => (steps.Sta6(), ul.release()),
    Sta8: () => (steps.Sta6(), ul.input(PDUS.Evt12!)),
    Sta9: () => (steps.Sta5(), ul.input(PDUS.Evt3!), ul.release(), ul.input(PDUS.Evt12!)),
    Sta10: () => (steps.Sta7(), ul.input(PDUS.Evt12!)),
    Sta11: () => (steps.Sta9(), ul.releaseResponse()),
    Sta12: () => (steps.Sta10(), ul.input(PDUS.Evt13!)),
    Sta13: () => (steps.Sta2(), ul.input(PDUS.Evt19!)),
  };
  steps[state]();
  assert.equal(ul.state, state, `set-up reaches ${state}`);
  h.answer = {};
  h.written.length = 0;
  h.ended = 0;
  h.destroyed = 0;
  h.transitions.length = 0;
  h.told.length = 0;
  h.aborts.length = 0;
  return h;
}

/** Makes `event` happen; false when it cannot be made to happen in this state (ARTIM not running). */
function cause(h: Harness, event: Event): boolean {
  const { ul } = h;
  const pdu = PDUS[event];
  if (pdu) {
    ul.input(pdu);
    return true;
  }
  switch (event) {
    case 'Evt1':
      ul.associate(rq);
      return true;
    case 'Evt2':
      ul.transportConfirmation();
      return true;
    case 'Evt5':
      ul.transportIndication();
      return true;
    case 'Evt7':
      ul.accept(ac, 16384);
      return true;
    case 'Evt8':
      ul.reject({ result: 1, source: 1, reason: 7 });
      return true;
    case 'Evt9':
      ul.send([pdataPdu(1, 0x03, Buffer.alloc(4))]);
      return true;
    case 'Evt11':
      ul.release();
      return true;
    case 'Evt14':
      ul.releaseResponse();
      return true;
    case 'Evt15':
      ul.abort('asked by the test');
      return true;
    case 'Evt17':
      ul.transportClosed();
      return true;
    case 'Evt18':
      if (!['Sta2', 'Sta13'].includes(ul.state)) return false;
      h.clock.advance(ARTIM);
      return true;
    default:
      throw new Error(`no way to cause ${event}`);
  }
}

const SENDS: Partial<Record<Action, number>> = {
  'AE-2': 0x01,
  'AE-7': 0x02,
  'AE-8': 0x03,
  'DT-1': 0x04,
  'AR-7': 0x04,
  'AR-1': 0x05,
  'AR-4': 0x06,
  'AR-9': 0x06,
  'AA-1': 0x07,
  'AA-8': 0x07,
};
const DESTROYS: ReadonlySet<Action> = new Set(['AE-4', 'AR-3', 'AA-2', 'AA-3']);
const ENDS: ReadonlySet<Action> = new Set(['AE-8', 'AR-4', 'AA-1', 'AA-8']);
const TELLS: Partial<Record<Action, string>> = {
  'AE-3': 'associate-accepted',
  'AE-4': 'associate-rejected',
  'AE-6': 'associate-indication',
  'DT-2': 'pdv',
  'AR-6': 'pdv',
  'AR-2': 'release-indication',
  'AR-8': 'release-indication',
  'AR-3': 'release-confirmation',
  'AR-10': 'release-confirmation',
  'AA-3': 'abort-indication',
  'AA-4': 'abort-indication',
  'AA-8': 'abort-indication',
};

describe('PS3.8 state machine', () => {
  test('the table has an answer for every event in every state, and the standard cells PS3.8 fills', () => {
    for (const s of STATES) for (const e of EVENT_NAMES) assert.ok(ACTIONS[TRANSITIONS[s][e]], `${s} ${e}`);
    // A few cells of table 9-10, read off the standard.
    assert.equal(TRANSITIONS.Sta2.Evt6, 'AE-6');
    assert.equal(TRANSITIONS.Sta6.Evt6, 'AA-8');
    assert.equal(TRANSITIONS.Sta6.Evt13, 'AA-8');
    assert.equal(TRANSITIONS.Sta2.Evt10, 'AA-1');
    assert.equal(TRANSITIONS.Sta7.Evt12, 'AR-8');
    assert.equal(TRANSITIONS.Sta13.Evt6, 'AA-7');
    assert.equal(TRANSITIONS.Sta13.Evt17, 'AR-5');
    assert.equal(TRANSITIONS.Sta4.Evt15, 'AA-2');
    assert.equal(TRANSITIONS.Sta2.Evt15, 'AA-2', 'our filling: closing an unassociated connection');
    assert.equal(TRANSITIONS.Sta1.Evt10, 'ignore');
    assert.equal(TRANSITIONS.Sta13.Evt9, 'local-error');
  });

  for (const state of STATES) {
    test(`${state}: every event gets the table's action, with its effects`, () => {
      for (const event of EVENT_NAMES) {
        const h = inState(state);
        const expected = TRANSITIONS[state][event];
        if (!cause(h, event)) {
          assert.equal(h.transitions.length, 0, `${state} ${event} cannot happen: nothing moves`);
          continue;
        }
        const t = h.transitions[0];
        if (!t) {
          // Input in Sta1 is not even parsed (no connection): only an ignored cell may stay silent.
          assert.equal(expected, 'ignore', `${state} ${event}: no transition although the table says ${expected}`);
          continue;
        }
        const what = `${state} ${event} -> ${expected}`;
        assert.equal(t.action, expected, what);
        const next = NEXT_STATES[expected];
        if (next === 'same') assert.equal(t.to, state, what);
        else assert.ok(next.includes(t.to), `${what}: went to ${t.to}`);
        const sent = SENDS[expected];
        if (sent !== undefined) assert.equal(h.written[0]?.[0], sent, `${what}: sends PDU type ${sent}`);
        if (expected === 'AA-7') {
          // Sta13 after our own reject / abort / release answer: our side is already closed, nothing more is sent.
          assert.ok(
            h.written.every((b) => b[0] === 0x07),
            what,
          );
        }
        if (sent === undefined && expected !== 'AA-7') assert.equal(h.written.length, 0, `${what}: sends nothing`);
        if (DESTROYS.has(expected)) assert.equal(h.destroyed, 1, `${what}: closes the transport`);
        if (ENDS.has(expected)) assert.equal(h.ended, 1, `${what}: closes our side after its PDU`);
        const told = TELLS[expected];
        if (told) assert.ok(h.told.includes(told), `${what}: tells the user ${told} (got ${h.told.join(', ')})`);
        if (t.to === 'Sta1') assert.equal(h.told.at(-1), 'closed', `${what}: closed, last`);
      }
    });
  }
});

describe('upper layer behaviour', () => {
  test('ARTIM: no A-ASSOCIATE-RQ within artim closes the connection; one in time stops it', () => {
    const h = inState('Sta2');
    h.clock.advance(ARTIM - 1);
    assert.equal(h.ul.state, 'Sta2');
    h.clock.advance(1);
    assert.equal(h.ul.state, 'Sta1');
    assert.equal(h.destroyed, 1);
    const ok = inState('Sta6');
    ok.clock.advance(ARTIM * 10);
    assert.notEqual(ok.ul.state, 'Sta2');
  });

  test('after a reject, ARTIM bounds the wait for the peer to close', () => {
    const h = inState('Sta3');
    h.ul.reject({ result: 1, source: 1, reason: 7 });
    assert.equal(h.ul.state, 'Sta13');
    assert.equal(h.ended, 1);
    h.clock.advance(ARTIM);
    assert.equal(h.ul.state, 'Sta1');
    assert.equal(h.destroyed, 1);
  });

  test('idle: aborted after idleMs without a PDU, never while work is in flight', () => {
    const h = inState('Sta6');
    h.clock.advance(IDLE / 2);
    h.ul.input(pdataPdu(1, 0x02, Buffer.alloc(2)));
    h.clock.advance(IDLE / 2 + 1);
    assert.equal(h.ul.state, 'Sta6', 'the PDU restarted the idle time');
    h.ul.workStarted();
    h.clock.advance(IDLE * 5);
    assert.equal(h.ul.state, 'Sta6', 'busy: not idle');
    h.ul.workFinished();
    h.clock.advance(IDLE - 1);
    assert.equal(h.ul.state, 'Sta6');
    h.clock.advance(1);
    assert.equal(h.ul.state, 'Sta13');
    assert.equal(h.written.at(-1)?.[0], 0x07, 'A-ABORT sent');
    assert.match(h.aborts[0]!.detail, /idle/);
  });

  test('limits from the header alone: P-DATA above what we announced, an association PDU above 64 KiB', () => {
    const h = inState('Sta6');
    const head = Buffer.from([0x04, 0, 0, 0, 0, 0]);
    head.writeUInt32BE(16385, 2);
    h.ul.input(head);
    assert.equal(h.ul.state, 'Sta13');
    assert.deepEqual([...h.written[0]!.subarray(8, 10)], [2, 6], 'A-ABORT service-provider, invalid PDU parameter');
    const a = inState('Sta2');
    a.ul.input(Buffer.from([0x01, 0, 0xff, 0xff, 0xff, 0xf0]));
    assert.equal(a.ul.state, 'Sta13');
    a.ul.input(Buffer.alloc(1 << 20));
    assert.equal(a.written.length, 1, 'the rest is dropped unread');
  });

  test('P-DATA on a context that was not accepted, an empty P-DATA-TF, an unknown PDU type: A-ABORT (2, reason)', () => {
    const cases: Array<[Buffer, number]> = [
      [pdataPdu(3, 0x03, Buffer.alloc(4)), 6],
      [Buffer.from([0x04, 0, 0, 0, 0, 0]), 6],
      [Buffer.from([0x0a, 0, 0, 0, 0, 4, 0, 0, 0, 0]), 1],
      [encodeAssociateRq(rq), 2],
      [encodeReleaseRp(), 2],
    ];
    for (const [bytes, reason] of cases) {
      const h = inState('Sta6');
      h.ul.input(bytes);
      assert.equal(h.ul.state, 'Sta13');
      assert.deepEqual([...h.written[0]!.subarray(8, 10)], [2, reason], bytes.subarray(0, 6).toString('hex'));
      assert.equal(h.aborts[0]?.by, 'provider');
    }
  });

  test('an A-ASSOCIATE-RQ whose items overrun it, in Sta2: A-ABORT, no indication', () => {
    const bad = encodeAssociateRq(rq);
    bad.writeUInt16BE(0xffff, 6 + 68 + 2); // the application context item claims 65535 bytes
    const h = inState('Sta2');
    h.ul.input(bad);
    assert.equal(h.ul.state, 'Sta13');
    assert.equal(h.written[0]?.[0], 0x07);
    assert.ok(!h.told.includes('associate-indication'));
  });

  test('requestor: associate, accepted, release, confirmed', () => {
    const h = harness('requestor');
    h.ul.associate(rq);
    assert.equal(h.connects, 1);
    h.ul.transportConfirmation();
    assert.equal(h.written[0]?.[0], 0x01);
    h.ul.input(encodeAssociateAc(ac));
    assert.equal(h.ul.state, 'Sta6');
    h.ul.send([pdataPdu(1, 0x03, Buffer.alloc(4))]);
    h.ul.release();
    h.ul.input(encodeReleaseRp());
    assert.equal(h.ul.state, 'Sta1');
    assert.deepEqual(h.told, ['associate-accepted', 'release-confirmation', 'closed']);
  });

  test('requestor: no A-ASSOCIATE-AC within ARTIM aborts', () => {
    const h = inState('Sta5');
    h.clock.advance(ARTIM);
    assert.equal(h.ul.state, 'Sta13');
    assert.equal(h.written.at(-1)?.[0], 0x07);
  });
});
