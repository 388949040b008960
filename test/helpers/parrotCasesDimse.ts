/**
 * The named malformed-peer cases of issue 11, part 3: command sets (PS3.7 6.3, annex E), hostile data sets (the
 * 100 000-deep nested sequence for C-STORE and MPPS N-CREATE, parsed without peer-controlled recursion) and what
 * PS3.8 says is not tested or may be cut anywhere (these exchanges must succeed).
 */
import { fragments, MCH, pdata, pdv, releaseRq, UID } from './parrot.js';
import {
  commandSet,
  CMD,
  deepMppsDataset,
  deepStoreDataset,
  echoRq,
  nCreateRq,
  NO_DATA_SET,
  storeRq,
} from './parrotDimse.js';
import { associate, echoOn, release, storeExchange, validStore } from './parrotExchange.js';
import { both, ends, failed, succeeds, type Script } from './parrotRun.js';
import type { CaseCtx, EdgeCase } from './parrotCases.js';
import { afterAc, echoPdu, noSuccess, refusedMessage } from './parrotCasesData.js';

export const MESSAGE_CASES: EdgeCase[] = [
  // -- command sets (PS3.7 6.3, annex E) ------------------------------------------------------------------------
  {
    name: 'command set whose last element overruns it',
    script: storeWith({ command: (uid) => storeRq({ sopInstance: uid }, { lastLengthDelta: 40 }) }),
    check: both(noSuccess, refusedMessage),
  },
  {
    // PS3.7 6.3 has only group 0000 in a command set; DCMTK ignores the stray element and stores: liveness only.
    name: 'command set with an element outside group 0000',
    script: storeWith({
      command: (uid) =>
        Buffer.concat([storeRq({ sopInstance: uid }), Buffer.from([8, 0, 0x18, 0, 2, 0, 0, 0, 0x31, 0])]),
    }),
    check: ends,
  },
  {
    name: "C-STORE whose command SOP class differs from its context's",
    script: storeWith({ command: (uid) => storeRq({ sopInstance: uid, sopClass: UID.ctStorage }) }),
    check: both(noSuccess, refusedMessage),
  },
  { name: 'C-STORE on the verification context', script: storeWith({ pc: 3 }), check: both(noSuccess, refusedMessage) },
  {
    name: 'C-STORE with CommandDataSetType "no data set"',
    script: storeWith({ command: (uid) => storeRq({ sopInstance: uid, dataSetType: NO_DATA_SET }), data: false }),
    check: both(noSuccess, refusedMessage),
  },
  {
    name: 'C-STORE without Affected SOP Instance UID',
    script: storeWith({
      command: () =>
        commandSet([
          [0x0002, UID.mrStorage],
          [0x0100, CMD.C_STORE_RQ],
          [0x0110, 1],
          [0x0700, 0],
          [0x0800, 0],
        ]),
    }),
    check: both(noSuccess, refusedMessage),
  },
  {
    name: 'unknown DIMSE command field 0x0FF0',
    script: afterAc(
      pdata([
        pdv(
          3,
          MCH.COMMAND_LAST,
          commandSet([
            [0x0002, UID.verification],
            [0x0100, 0x0ff0],
            [0x0110, 9],
            [0x0800, NO_DATA_SET],
          ]),
        ),
      ]),
    ),
    check: refusedMessage,
  },
  // -- data sets without peer-controlled recursion -------------------------------------------------------------
  {
    name: 'C-STORE of a 100 000-deep nested data set: a C000-range failure',
    // Alone: a node that chokes on it must not take its neighbours' verdicts with it.
    exclusive: true,
    script: storeWith({ dataset: (uid) => deepStoreDataset(uid, 100_000) }),
    check: failed(0xc000, 0xcfff, false),
  },
  {
    name: 'MPPS N-CREATE of a 100 000-deep nested data set: processing failure',
    // Alone: a node that chokes on it must not take its neighbours' verdicts with it.
    exclusive: true,
    script: async (sc) => {
      await associate(sc, { contexts: [{ id: 1, abstract: UID.mpps, transfer: [UID.explicitLE] }] });
      for (const p of fragments(1, true, nCreateRq({ sopInstance: '2.25.4242424242' }))) sc.s.send(p);
      for (const p of fragments(1, false, deepMppsDataset(100_000), 16000)) sc.s.send(p);
      await sc.status();
      release(sc);
    },
    check: failed(0x0110, 0x0110, false),
  },
  // -- what PS3.8 says is not tested, and valid exchanges cut oddly: these must work ---------------------------
  {
    name: 'reserved byte of P-DATA-TF not zero is not tested (C-STORE Success)',
    script: async (sc, c) => {
      const ex = storeExchange(c.uid());
      const mark = (b: Buffer) => Buffer.concat([b.subarray(0, 1), Buffer.from([0x5a]), b.subarray(2)]);
      await validStore(sc, { ...ex, command: mark(ex.command), data: ex.data.map(mark) });
    },
    check: succeeds,
  },
  {
    name: 'a valid C-STORE in 60 small TCP writes',
    script: async (sc, c) => {
      const ex = storeExchange(c.uid());
      sc.s.send(ex.rq);
      await sc.ac();
      const rest = Buffer.concat([ex.command, ...ex.data]);
      await sc.s.sendPieces(
        rest,
        Array.from({ length: 60 }, (_, i) => Math.floor(((i + 1) * rest.length) / 61)),
      );
      await sc.status();
      release(sc);
    },
    check: succeeds,
  },
  {
    name: 'C-ECHO with the command in two fragments (cut after its group length)',
    script: async (sc) => {
      await associate(sc);
      const rq = echoRq(4);
      sc.s.send(pdata([pdv(3, MCH.COMMAND, rq.subarray(0, 12))]));
      sc.s.send(pdata([pdv(3, MCH.COMMAND_LAST, rq.subarray(12))]));
      await sc.status();
      release(sc);
    },
    check: succeeds,
  },
  {
    name: 'A-RELEASE-RQ with a 0-length body',
    script: async (sc) => {
      await associate(sc);
      sc.s.send(releaseRq({}, Buffer.alloc(0)));
      await sc.probe();
    },
    check: ends,
  },
  {
    name: 'P-DATA-TF after A-RELEASE-RQ',
    script: async (sc) => {
      await associate(sc);
      sc.s.send(releaseRq());
      sc.s.send(echoPdu(3));
    },
    check: ends,
  },
  {
    name: 'C-ECHO then release, the node answers every step',
    script: async (sc) => {
      await associate(sc);
      await echoOn(sc);
      release(sc);
    },
    check: succeeds,
  },
];

/** A C-STORE with one piece swapped: the command set, the presentation context, or the data set. */
function storeWith(o: {
  command?: (uid: string) => Buffer;
  dataset?: (uid: string) => Buffer;
  pc?: number;
  data?: boolean;
}) {
  return async (sc: Script, c: CaseCtx) => {
    const uid = c.uid();
    const ex = storeExchange(uid);
    const pc = o.pc ?? 1;
    sc.s.send(ex.rq);
    await sc.ac();
    for (const p of fragments(pc, true, o.command ? o.command(uid) : ex.commandSet)) sc.s.send(p);
    if (o.data !== false)
      for (const p of fragments(pc, false, o.dataset ? o.dataset(uid) : ex.image.dataset, 16000)) sc.s.send(p);
    await sc.status();
    release(sc);
  };
}
