/**
 * The named malformed-peer cases of issue 11, part 2: after the association (PS3.8 table 9-10, Sta6: unexpected and
 * unrecognized PDUs, AA-8), P-DATA-TF structure (PS3.8 9.3.5, annex E), DIMSE message sequencing, and peers that
 * vanish or fall silent in the middle of a C-STORE.
 */
import {
  abortPdu,
  associateAc,
  associateRj,
  associateRq,
  fragments,
  MCH,
  pdata,
  pdu,
  pdv,
  releaseRp,
  releaseRq,
  STORE_CONTEXTS,
  UID,
} from './parrot.js';
import { echoRq } from './parrotDimse.js';
import { associate, storeExchange, type StoreExchange } from './parrotExchange.js';
import { abortAfterAc, aborted, both, closesWithin, failed, type Check, type Script } from './parrotRun.js';
import type { CaseCtx, EdgeCase } from './parrotCases.js';

/** PS3.8 9.3.8 A-ABORT reasons when the source is the service provider (2). */
const UNRECOGNIZED_PDU = 1;
const UNEXPECTED_PDU = 2;
const UNEXPECTED_PARAMETER = 5;
const INVALID_PARAMETER = 6;

/** A UL-level protocol error after the association: AA-8, A-ABORT from the service provider with this reason. */
const providerAbort = (...reasons: number[]) => abortAfterAc([2], reasons);
/** A DIMSE-level error (message sequencing, a command set that cannot be read): an A-ABORT from either source. */
const dimseAbort = abortAfterAc([0, 2]);
/** No Success for a message the node must refuse: a failure status or an A-ABORT. */
export const refusedMessage = failed(0x0100, 0xcfff, true);
/** No Success, however the node ends it (release or abort). */
export const noSuccess: Check = (o) =>
  o.statuses.includes(0) ? { acceptedBad: 'Success for an incomplete data set' } : {};

/** Associate with the default contexts, send `bytes`, give the node a second to object, then release. */
export const afterAc =
  (...bytes: Buffer[]) =>
  async (sc: Script) => {
    await associate(sc);
    for (const b of bytes) sc.s.send(b);
    await sc.probe();
  };

/** Associate, send the C-STORE command and the first `n` data PDUs of a fresh exchange, then `then`. */
export const midStore =
  (n: number, then: (sc: Script, ex: StoreExchange) => Promise<void> | void) => async (sc: Script, c: CaseCtx) => {
    const ex = storeExchange(c.uid());
    sc.s.send(ex.rq);
    await sc.ac();
    sc.s.send(ex.command);
    for (const d of ex.data.slice(0, n)) sc.s.send(d);
    await then(sc, ex);
  };

const probeAfter = (bytes: Buffer) => async (sc: Script) => {
  sc.s.send(bytes);
  await sc.probe();
};

export const echoPdu = (pc: number) => pdata([pdv(pc, MCH.COMMAND_LAST, echoRq(3))]);

export const AFTER_ASSOCIATION_CASES: EdgeCase[] = [
  // -- unexpected / unrecognized PDUs in Sta6 (AA-8) ---------------------------------------------------------------
  {
    name: 'undefined PDU type 0x08 after association',
    script: afterAc(pdu(0x08, Buffer.alloc(4))),
    check: providerAbort(UNRECOGNIZED_PDU),
  },
  {
    name: 'undefined PDU type 0x00 after association',
    script: afterAc(pdu(0x00, Buffer.alloc(4))),
    check: providerAbort(UNRECOGNIZED_PDU),
  },
  {
    name: 'undefined PDU type 0x7F in the middle of a data set',
    script: midStore(1, probeAfter(pdu(0x7f, Buffer.alloc(4)))),
    check: providerAbort(UNRECOGNIZED_PDU),
  },
  {
    name: 'second A-ASSOCIATE-RQ on an open association',
    script: afterAc(associateRq({})),
    check: providerAbort(UNEXPECTED_PDU),
  },
  { name: 'unsolicited A-RELEASE-RP', script: afterAc(releaseRp()), check: providerAbort(UNEXPECTED_PDU) },
  {
    name: 'A-ASSOCIATE-AC from the requestor',
    script: afterAc(associateAc([{ id: 1, result: 0, transfer: UID.implicitLE }])),
    check: providerAbort(UNEXPECTED_PDU),
  },
  {
    name: 'A-ASSOCIATE-RJ from the requestor',
    script: afterAc(associateRj(1, 1, 1)),
    check: providerAbort(UNEXPECTED_PDU),
  },
  // -- P-DATA-TF structure (PS3.8 9.3.5) ----------------------------------------------------------------------
  { name: 'empty P-DATA-TF (no PDV)', script: afterAc(pdata([])), check: providerAbort(INVALID_PARAMETER) },
  {
    name: 'P-DATA-TF on a context never proposed (5)',
    script: afterAc(echoPdu(5)),
    check: providerAbort(UNEXPECTED_PARAMETER, INVALID_PARAMETER),
  },
  {
    name: 'P-DATA-TF on an even context ID (2)',
    script: afterAc(echoPdu(2)),
    check: providerAbort(UNEXPECTED_PARAMETER, INVALID_PARAMETER),
  },
  {
    name: 'P-DATA-TF on a rejected context',
    script: async (sc) => {
      await associate(sc, {
        contexts: [...STORE_CONTEXTS, { id: 5, abstract: UID.patientRootFind, transfer: [UID.implicitLE] }],
      });
      sc.s.send(echoPdu(5));
      await sc.probe();
    },
    check: providerAbort(UNEXPECTED_PARAMETER, INVALID_PARAMETER),
  },
  {
    name: 'PDV length longer than its PDU',
    script: afterAc(pdata([pdv(3, MCH.COMMAND_LAST, echoRq(3), { lengthDelta: 20 })])),
    check: providerAbort(INVALID_PARAMETER),
  },
  {
    name: 'PDV length shorter than its PDU (3 stray bytes)',
    // The PDV is a first command fragment: nothing can be answered before the stray bytes are seen.
    script: afterAc(pdata([pdv(3, MCH.COMMAND, echoRq(3).subarray(0, 20)), Buffer.from([1, 2, 3])])),
    check: providerAbort(INVALID_PARAMETER),
  },
  {
    name: 'PDV item length 0',
    script: afterAc(pdata([pdv(3, MCH.COMMAND_LAST, Buffer.alloc(8), { length: 0 })])),
    check: providerAbort(INVALID_PARAMETER),
  },
  {
    name: 'PDV item length 1',
    script: afterAc(pdata([pdv(3, MCH.COMMAND_LAST, Buffer.alloc(8), { length: 1 })])),
    check: providerAbort(INVALID_PARAMETER),
  },
  {
    name: 'second PDV overruns the P-DATA-TF',
    script: afterAc(
      pdata([
        pdv(3, MCH.COMMAND, echoRq(3).subarray(0, 20)),
        pdv(3, MCH.COMMAND_LAST, echoRq(3).subarray(20), { lengthDelta: 9 }),
      ]),
    ),
    check: providerAbort(INVALID_PARAMETER),
  },
  {
    name: 'P-DATA-TF longer than the maximum length the node announced',
    script: async (sc, c) => {
      const ex = storeExchange(c.uid());
      sc.s.send(ex.rq);
      const ac = await sc.ac();
      if (!ac.maxLength) throw new Error(`the node announced no maximum length (${ac.maxLength})`);
      sc.s.send(ex.command);
      const big = Buffer.concat([ex.image.dataset, Buffer.alloc(ac.maxLength + 100 - ex.image.dataset.length)]);
      sc.s.send(pdata([pdv(1, MCH.DATA_LAST, big)]));
      await sc.probe();
    },
    check: providerAbort(INVALID_PARAMETER),
  },
  {
    name: 'P-DATA-TF header announcing 4 GiB',
    script: afterAc(Buffer.concat([Buffer.from([0x04, 0, 0xff, 0xff, 0xff, 0xf0]), Buffer.alloc(65536)])),
    check: providerAbort(INVALID_PARAMETER),
  },
  // -- DIMSE message sequencing (PS3.8 annex E, PS3.7 9.3) ------------------------------------------------------
  {
    name: 'data set fragment before any command',
    script: afterAc(pdata([pdv(1, MCH.DATA_LAST, Buffer.alloc(64))])),
    check: dimseAbort,
  },
  {
    name: 'command fragment (not last) then a data set fragment',
    script: async (sc, c) => {
      const ex = storeExchange(c.uid());
      await associate(sc);
      sc.s.send(pdata([pdv(1, MCH.COMMAND, ex.commandSet.subarray(0, 30))]));
      sc.s.send(ex.data[0]!);
      await sc.probe();
    },
    check: dimseAbort,
  },
  {
    name: 'a new command in the middle of a data set',
    script: midStore(1, (sc) => probeAfter(echoPdu(3))(sc)),
    check: dimseAbort,
  },
  {
    name: 'data set fragments out of order (last before the others)',
    script: midStore(0, async (sc, ex) => {
      sc.s.send(ex.data[2]!);
      sc.s.send(ex.data[0]!);
      sc.s.send(ex.data[1]!);
      await sc.probe();
    }),
    check: both(noSuccess, refusedMessage),
  },
  {
    name: 'data set without a last fragment, then A-RELEASE-RQ',
    script: midStore(2, (sc) => sc.s.send(releaseRq())),
    check: noSuccess,
  },
  {
    name: 'data set without a last fragment, then a new C-STORE',
    script: midStore(2, async (sc, ex) => {
      sc.s.send(ex.command);
      await sc.probe();
    }),
    check: dimseAbort,
  },
  {
    name: 'command PDV on one context, its data set on another',
    script: midStore(0, async (sc, ex) => {
      for (const d of fragments(3, false, ex.image.dataset)) sc.s.send(d);
      await sc.probe();
    }),
    check: both(noSuccess, dimseAbort),
  },
  {
    name: 'C-STORE data set stopped halfway, then silence: aborted by the idle timer',
    script: midStore(1, (sc) => sc.linger()),
    check: both(
      noSuccess,
      aborted,
      closesWithin((t) => t.idleMs + t.marginMs),
    ),
  },
  {
    name: 'C-STORE command without its data set, then silence: aborted by the idle timer',
    script: midStore(0, (sc) => sc.linger()),
    check: both(
      noSuccess,
      aborted,
      closesWithin((t) => t.idleMs + t.marginMs),
    ),
  },
  // -- peers that go away mid-message --------------------------------------------------------------------------
  {
    name: 'A-ABORT in the middle of a data set: the node closes',
    script: midStore(1, (sc) => (sc.s.send(abortPdu(0, 0)), sc.linger())),
    check: both(
      noSuccess,
      closesWithin((t) => t.marginMs),
    ),
  },
  {
    name: 'reset (RST) in the middle of a data set PDU',
    script: midStore(1, (sc, ex) => (sc.s.send(ex.data[1]!.subarray(0, 100)), sc.s.reset())),
    check: noSuccess,
  },
  { name: 'FIN in the middle of a data set', script: midStore(1, (sc) => sc.s.end()), check: noSuccess },
  {
    name: 'FIN in the middle of a PDU header',
    script: midStore(1, (sc, ex) => (sc.s.send(ex.data[1]!.subarray(0, 3)), sc.s.end())),
    check: noSuccess,
  },
];
