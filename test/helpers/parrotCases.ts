/**
 * The named malformed-peer cases of issue 11, part 1: A-ASSOCIATE-RQ validation (PS3.8 9.3.2, 9.3.4; PS3.7 annex D),
 * PDUs before any association (PS3.8 table 9-10, Sta2) and the timers (ARTIM, idle). Each case is a script for the
 * raw-socket peer and the answer PS3.8 requires; the A-ASSOCIATE-RJ codes chosen where PS3.8 leaves a choice are
 * listed in REJECT below.
 */
import {
  abortPdu,
  associateAc,
  associateRj,
  associateRq,
  item,
  ITEM,
  pdata,
  pdv,
  MCH,
  PDU,
  pdu,
  releaseRp,
  releaseRq,
  STORE_CONTEXTS,
  UID,
  type PcSpec,
  type RqSpec,
} from './parrot.js';
import { echoRq } from './parrotDimse.js';
import { associate, echoOn, release } from './parrotExchange.js';
import { abortNoAc, aborted, both, closesWithin, refused, rj, succeeds, type Check, type Script } from './parrotRun.js';

export interface CaseCtx {
  /** A fresh SOP Instance UID for a store this case makes (the runner checks nothing of it is left on failure). */
  uid(): string;
  maxAssociations: number;
}

export interface EdgeCase {
  name: string;
  script(sc: Script, ctx: CaseCtx): Promise<void>;
  check: Check;
  /** Runs alone (it uses every association slot). */
  exclusive?: boolean;
}

/**
 * A-ASSOCIATE-RJ (result, source, reason) per PS3.8 9.3.4. Where PS3.8 names a reason we want exactly it; where it
 * names none (a malformed but parseable request) both "no-reason-given" answers are accepted: service-user (1,1,1) and
 * service-provider ACSE (1,2,1).
 */
export const REJECT = {
  protocolVersion: [1, 2, 2] as [number, number, number],
  applicationContext: [1, 1, 2] as [number, number, number],
  callingAe: [1, 1, 3] as [number, number, number],
  calledAe: [1, 1, 7] as [number, number, number],
  noReasonUser: [1, 1, 1] as [number, number, number],
  noReasonProvider: [1, 2, 1] as [number, number, number],
  localLimit: [2, 3, 2] as [number, number, number],
};
const malformed = rj(REJECT.noReasonUser, REJECT.noReasonProvider);

/** A request PS3.8 cannot parse (lengths that do not tile the PDU): A-ABORT (Sta2: AA-1) or an RJ with no reason. */
const unparsable: Check = (o) => {
  const t = o.terminal;
  if (o.accepted) return { acceptedBad: 'A-ASSOCIATE-AC for an unparsable request' };
  if (t?.kind === 'ABORT' && (t.source === 0 || t.source === 2)) return {};
  return malformed(o);
};

/** Sta2 + an unexpected or unrecognized PDU: AA-1, an A-ABORT (PS3.8 says service-user source; provider is fine). */
const sta2Abort = abortNoAc([0, 2]);

const rqOnly = (spec: RqSpec) => async (sc: Script) => {
  sc.s.send(associateRq(spec));
  await sc.ac();
  release(sc);
};
const rqEchoRelease =
  (spec: RqSpec, echoPc = 3) =>
  async (sc: Script) => {
    sc.s.send(associateRq(spec));
    await sc.ac();
    await echoOn(sc, echoPc);
    release(sc);
  };
const ctx = (id: number, abstract: string | string[] | undefined, transfer?: string[]): PcSpec => ({
  id,
  abstract,
  transfer: transfer ?? [UID.implicitLE],
});
const withVerification = (...pcs: PcSpec[]) => [...pcs, ctx(253, UID.verification)];

export const ASSOCIATION_CASES: EdgeCase[] = [
  // -- protocol version (PS3.8 9.3.2: only bit 0 is tested) ----------------------------------------------------
  { name: 'RQ protocol version 0x0000', script: rqOnly({ protocolVersion: 0 }), check: rj(REJECT.protocolVersion) },
  { name: 'RQ protocol version 0x0002', script: rqOnly({ protocolVersion: 2 }), check: rj(REJECT.protocolVersion) },
  {
    name: 'RQ protocol version 0xFFFE',
    script: rqOnly({ protocolVersion: 0xfffe }),
    check: rj(REJECT.protocolVersion),
  },
  { name: 'RQ protocol version 0x0003 is accepted', script: rqEchoRelease({ protocolVersion: 3 }), check: succeeds },
  // -- AE titles (PS3.5 AE: no control characters, no backslash, not all spaces) -----------------------------------
  { name: 'calling AE with ESC', script: rqOnly({ calling: 'PAR\x1bROT' }), check: rj(REJECT.callingAe) },
  { name: 'calling AE with a newline', script: rqOnly({ calling: 'PARROT\n' }), check: rj(REJECT.callingAe) },
  { name: 'calling AE with NUL inside', script: rqOnly({ calling: 'PAR\0ROT' }), check: rj(REJECT.callingAe) },
  { name: 'calling AE all NUL', script: rqOnly({ calling: Buffer.alloc(16) }), check: rj(REJECT.callingAe) },
  { name: 'calling AE with a backslash', script: rqOnly({ calling: 'PAR\\ROT' }), check: rj(REJECT.callingAe) },
  { name: 'calling AE all spaces', script: rqOnly({ calling: ' '.repeat(16) }), check: rj(REJECT.callingAe) },
  {
    name: 'called AE with a control character',
    script: rqOnly({ called: 'SCANNODE\x01' }),
    check: rj(REJECT.calledAe),
  },
  { name: 'called AE all spaces', script: rqOnly({ called: ' '.repeat(16) }), check: rj(REJECT.calledAe) },
  { name: 'called AE with a backslash', script: rqOnly({ called: 'SCAN\\NODE' }), check: rj(REJECT.calledAe) },
  { name: 'called AE of another node', script: rqOnly({ called: 'NOTSCANNODE' }), check: rj(REJECT.calledAe) },
  { name: 'calling AE with an inner space is accepted', script: rqEchoRelease({ calling: 'MY SCU' }), check: succeeds },
  // -- presentation contexts (PS3.8 9.3.2.2: odd IDs 1-255, unique, one abstract syntax, transfer syntaxes) ----------
  { name: 'no presentation context', script: rqOnly({ contexts: [] }), check: malformed },
  {
    name: 'presentation context ID even (2)',
    script: rqOnly({ contexts: withVerification(ctx(2, UID.mrStorage)) }),
    check: malformed,
  },
  {
    name: 'presentation context ID 0',
    script: rqOnly({ contexts: withVerification(ctx(0, UID.mrStorage)) }),
    check: malformed,
  },
  {
    name: 'duplicate presentation context IDs',
    script: rqOnly({ contexts: [ctx(1, UID.mrStorage), ctx(1, UID.verification)] }),
    check: malformed,
  },
  {
    name: '129 presentation contexts',
    script: rqOnly({ contexts: Array.from({ length: 129 }, (_, i) => ctx((2 * i + 1) & 0xff || 1, UID.verification)) }),
    check: malformed,
  },
  {
    name: '128 presentation contexts (IDs 1-255) are accepted',
    script: rqEchoRelease({ contexts: Array.from({ length: 128 }, (_, i) => ctx(2 * i + 1, UID.verification)) }, 255),
    check: succeeds,
  },
  {
    name: 'presentation context without transfer syntax',
    script: rqOnly({ contexts: withVerification(ctx(1, UID.mrStorage, [])) }),
    check: malformed,
  },
  {
    name: 'presentation context without abstract syntax',
    script: rqOnly({ contexts: withVerification(ctx(1, undefined)) }),
    check: malformed,
  },
  {
    // Parseable item lengths but an item PS3.8 does not allow: RJ (no reason) or, read as unparsable, A-ABORT.
    name: 'presentation context with two abstract syntaxes',
    script: rqOnly({ contexts: withVerification(ctx(1, [UID.mrStorage, UID.ctStorage])) }),
    check: unparsable,
  },
  // -- application context, user information (PS3.7 A.2.1, D.3.3.1) ---------------------------------------------
  {
    name: 'unknown application context name',
    script: rqOnly({ appContext: '1.2.3.4.5' }),
    check: rj(REJECT.applicationContext),
  },
  {
    name: 'no application context item',
    script: rqOnly({ appContext: null }),
    check: rj(REJECT.applicationContext, REJECT.noReasonUser, REJECT.noReasonProvider),
  },
  { name: 'no user information item', script: rqOnly({ userInfo: null }), check: malformed },
  {
    name: 'user information without maximum length',
    script: rqOnly({ userInfo: { maxLength: null } }),
    check: malformed,
  },
  {
    name: 'maximum length sub-item of 2 bytes',
    script: rqOnly({ userInfo: { maxLengthRaw: Buffer.from([0x40, 0x00]) } }),
    check: unparsable,
  },
  {
    name: 'maximum length 0 (no limit) is accepted',
    script: rqEchoRelease({ userInfo: { maxLength: 0 } }),
    check: succeeds,
  },
  {
    name: 'unknown user information sub-item is ignored',
    script: rqEchoRelease({ userInfo: { extra: [item(0xf0, 'future extension')] } }),
    check: succeeds,
  },
  {
    name: 'reserved RQ fields not zero are not tested',
    script: rqEchoRelease({ reservedFill: 0xa5 }),
    check: succeeds,
  },
  // -- lengths (every item consistent with its PDU) -----------------------------------------------------------
  {
    name: 'RQ PDU length shorter than its items',
    script: rqOnly({ pduKnobs: { lengthDelta: -10 } }),
    check: unparsable,
  },
  {
    name: 'presentation context item length overruns the PDU',
    script: rqOnly({ contexts: [{ ...STORE_CONTEXTS[0]!, itemKnobs: { lengthDelta: 400 } }] }),
    check: unparsable,
  },
  {
    name: 'abstract syntax sub-item overruns its item',
    script: rqOnly({
      contexts: [{ ...STORE_CONTEXTS[1]!, extra: [Buffer.from([ITEM.ABSTRACT, 0, 0x01, 0x00, 0x31])] }],
    }),
    check: unparsable,
  },
  {
    name: 'user information item overruns the PDU',
    script: rqOnly({ userInfo: { itemKnobs: { lengthDelta: 3 } } }),
    check: unparsable,
  },
  {
    name: 'application context item length 0',
    script: rqOnly({ appContextKnobs: { length: 0 } }),
    check: (o) => (o.terminal?.kind === 'RJ' ? rj(REJECT.applicationContext, REJECT.noReasonUser)(o) : unparsable(o)),
  },
  {
    name: 'RQ of the fixed fields only (no items)',
    script: rqOnly({ appContext: null, contexts: [], userInfo: null }),
    check: (o) =>
      o.terminal?.kind === 'RJ'
        ? rj(REJECT.applicationContext, REJECT.noReasonUser, REJECT.noReasonProvider)(o)
        : unparsable(o),
  },
  {
    name: 'RQ with a 70 KiB presentation context list (over the 64 KiB cap)',
    script: rqOnly({
      contexts: Array.from({ length: 128 }, (_, i) =>
        ctx(
          2 * i + 1,
          UID.verification,
          Array.from({ length: 10 }, (_, j) => `1.2.840.10008.1.2.1.${900000 + j}.${'1'.repeat(20)}`),
        ),
      ),
    }),
    check: refused,
  },
  {
    name: 'RQ header announcing 4 GiB',
    script: async (sc) => {
      sc.s.send(Buffer.concat([Buffer.from([0x01, 0, 0xff, 0xff, 0xff, 0xf0]), Buffer.alloc(4096)]));
      await sc.ac();
    },
    check: refused,
  },
  {
    name: 'beyond maxAssociations: RJ transient, local limit exceeded',
    exclusive: true,
    script: async (sc, c) => {
      const { ParrotSession } = await import('./parrotSession.js');
      const held = await Promise.all(Array.from({ length: c.maxAssociations }, () => ParrotSession.connect(sc.port)));
      try {
        for (const h of held) h.send(associateRq({ calling: 'HOLDER' }));
        const answers = await Promise.all(held.map((h) => h.until((e) => e.kind === 'AC', 15_000)));
        const notAc = answers.filter((a) => a.kind !== 'AC');
        if (notAc.length) throw new Error(`${notAc.length} of ${c.maxAssociations} associations were not accepted`);
        sc.s.send(associateRq({}));
        await sc.ac();
        release(sc);
      } finally {
        for (const h of held) h.destroy();
      }
    },
    check: rj(REJECT.localLimit),
  },
];

/** Valid enough to be answered, then one of these PDUs where none is expected (Sta2). */
export const BEFORE_ASSOCIATION_CASES: EdgeCase[] = [
  ...(
    [
      ['P-DATA-TF before any association', pdata([pdv(1, MCH.COMMAND_LAST, echoRq(1))])],
      ['A-RELEASE-RQ before any association', releaseRq()],
      ['A-RELEASE-RP before any association', releaseRp()],
      ['A-ASSOCIATE-AC sent to the SCP', associateAc([{ id: 1, result: 0, transfer: UID.implicitLE }])],
      ['A-ASSOCIATE-RJ sent to the SCP', associateRj(1, 1, 1)],
      ['undefined PDU type 0x00 first', pdu(0x00, Buffer.alloc(4))],
      ['undefined PDU type 0xFF first', pdu(0xff, Buffer.alloc(4))],
      ['undefined PDU type 0x08 first', pdu(0x08, Buffer.alloc(10))],
      ['TLS ClientHello on the plain port', Buffer.from('16030100310100002d0303', 'hex')],
      ['an HTTP request on the DICOM port', Buffer.from('GET / HTTP/1.1\r\nHost: scannode\r\n\r\n')],
    ] as Array<[string, Buffer]>
  ).map(([name, bytes]) => ({
    name,
    script: async (sc: Script) => {
      sc.s.send(bytes);
      await sc.ac();
    },
    check: sta2Abort,
  })),
  {
    name: 'A-ABORT before any association: the node closes at once',
    script: async (sc) => {
      sc.s.send(abortPdu(0, 0));
      sc.linger();
    },
    check: closesWithin((t) => t.marginMs),
  },
  { name: 'peer closes right after connecting', script: (sc) => Promise.resolve(sc.s.end()), check: refused },
  { name: 'peer resets right after connecting', script: (sc) => Promise.resolve(sc.s.reset()), check: refused },
];

export const TIMER_CASES: EdgeCase[] = [
  {
    name: 'TCP connection that never sends: closed by ARTIM',
    script: (sc) => Promise.resolve(sc.linger()),
    check: both(
      refused,
      closesWithin((t) => t.artimMs + t.marginMs),
    ),
  },
  {
    name: '3 bytes of a PDU header, then silence: closed by ARTIM',
    script: (sc) => Promise.resolve((sc.s.send(Buffer.from([PDU.RQ, 0, 0])), sc.linger())),
    check: both(
      refused,
      closesWithin((t) => t.artimMs + t.marginMs),
    ),
  },
  {
    name: 'A-ASSOCIATE-RQ announcing more bytes than sent: closed by ARTIM',
    script: (sc) => Promise.resolve((sc.s.send(associateRq({ pduKnobs: { lengthDelta: 100 } })), sc.linger())),
    check: both(
      refused,
      closesWithin((t) => t.artimMs + t.marginMs),
    ),
  },
  {
    name: 'peer lingers after A-ASSOCIATE-RJ: the node closes within ARTIM',
    script: async (sc) => {
      sc.linger();
      await rqOnly({ called: 'NOTSCANNODE' })(sc);
    },
    check: both(
      rj(REJECT.calledAe),
      closesWithin((t) => t.artimMs + t.marginMs),
    ),
  },
  {
    name: 'peer lingers after the A-ABORT: the node closes within ARTIM',
    script: async (sc) => {
      sc.linger();
      sc.s.send(releaseRp());
      await sc.ac();
    },
    check: both(
      sta2Abort,
      closesWithin((t) => t.artimMs + t.marginMs),
    ),
  },
  {
    name: 'peer lingers after A-RELEASE-RP: the node closes within ARTIM',
    script: async (sc) => {
      sc.linger();
      await associate(sc);
      release(sc);
    },
    check: closesWithin((t) => t.artimMs + t.marginMs),
  },
  {
    name: 'accepted association left idle: aborted by the idle timer',
    script: async (sc) => {
      sc.linger();
      await associate(sc);
    },
    check: both(
      aborted,
      closesWithin((t) => t.idleMs + t.marginMs),
    ),
  },
];
