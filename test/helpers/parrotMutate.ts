/**
 * Seeded mutations of a valid C-STORE exchange (A-ASSOCIATE-RQ, command, three data fragments, A-RELEASE-RQ): one or
 * two operators per case, chosen and parameterised by a small PRNG, so a case is reproduced from its seed alone. Each
 * case says what PS3.8 lets the node do with it (parrotCheck.ts is the judge): refuse the association, refuse the
 * store, succeed (the mutation changes nothing PS3.8 may test), or anything that keeps the node alive and bounded.
 */
import { checkRq, checkStream } from './parrotCheck.js';
import type { StoreExchange } from './parrotExchange.js';
import type { AcEvent, Script } from './parrotRun.js';

/** mulberry32: a tiny seeded PRNG, [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Seg {
  bytes: Buffer;
  /** What the peer waits for after sending this segment. */
  await?: 'AC' | 'STATUS';
  /** Where TCP writes are cut inside it. */
  pieces?: number[];
  kind: 'rq' | 'command' | 'data' | 'release' | 'garbage';
  /** For data segments: offset in the data set of the first value byte. */
  dsOffset?: number;
}

export interface Plan {
  segs: Seg[];
  /** Stop after this many bytes of the whole stream, then `tail`. */
  cut?: number;
  tail?: 'silence' | 'fin' | 'rst';
  /** Every operator was one PS3.8 says must not change the outcome. */
  neutral: boolean;
  ops: string[];
}

export function basePlan(ex: StoreExchange): Plan {
  let ds = 0;
  const data = ex.data.map((bytes) => {
    const seg: Seg = { bytes, kind: 'data', dsOffset: ds };
    ds += bytes.length - 12;
    return seg;
  });
  data[data.length - 1]!.await = 'STATUS';
  return {
    segs: [
      { bytes: ex.rq, kind: 'rq', await: 'AC' },
      { bytes: ex.command, kind: 'command' },
      ...data,
      { bytes: ex.release, kind: 'release' },
    ],
    neutral: true,
    ops: [],
  };
}

type Rnd = () => number;
const int = (r: Rnd, n: number) => Math.floor(r() * n);
const pick = <T>(r: Rnd, xs: readonly T[]): T => xs[int(r, xs.length)]!;
const copy = (b: Buffer) => Buffer.from(b);

/** Offsets of the 2-byte length fields of every item and sub-item of an A-ASSOCIATE-RQ. */
function rqLengthFields(rq: Buffer): number[] {
  const out: number[] = [];
  const walk = (from: number, to: number, nested: boolean) => {
    let at = from;
    while (at + 4 <= to) {
      const type = rq[at]!;
      const len = rq.readUInt16BE(at + 2);
      out.push(at + 2);
      if (nested && type === 0x20) walk(at + 8, at + 4 + len, false);
      if (nested && type === 0x50) walk(at + 4, at + 4 + len, false);
      at += 4 + len;
    }
  };
  walk(74, rq.length, true);
  return out;
}

/** Offsets of the 4-byte length fields of the command set's elements (inside the command PDU). */
function commandLengthFields(pdu: Buffer): number[] {
  const out: number[] = [];
  for (let at = 12; at + 8 <= pdu.length; at += 8 + pdu.readUInt32LE(at + 4)) out.push(at + 4);
  return out;
}

const DELTAS = [-100, -6, -4, -2, -1, 1, 2, 4, 6, 100];

type Op = (p: Plan, r: Rnd) => string;

const pduSegs = (p: Plan, kinds?: Seg['kind'][]) =>
  p.segs.filter((s) => s.bytes.length >= 12 && (!kinds || kinds.includes(s.kind)));

const OPS: Array<[weight: number, neutral: boolean, name: string, op: Op]> = [
  [
    20,
    false,
    'bitflip',
    (p, r) => {
      const s = pick(r, p.segs);
      const i = r() < 0.5 ? int(r, Math.min(80, s.bytes.length)) : int(r, s.bytes.length);
      const bit = int(r, 8);
      s.bytes = copy(s.bytes);
      s.bytes[i]! ^= 1 << bit;
      return `bitflip(${s.kind}@${i} bit ${bit})`;
    },
  ],
  [
    8,
    false,
    'byte',
    (p, r) => {
      const s = pick(r, p.segs);
      const i = r() < 0.5 ? int(r, Math.min(80, s.bytes.length)) : int(r, s.bytes.length);
      const v = pick(r, [0x00, 0xff, 0x7f, 0x80, int(r, 256)]);
      s.bytes = copy(s.bytes);
      s.bytes[i] = v;
      return `byte(${s.kind}@${i}=0x${v.toString(16)})`;
    },
  ],
  [
    8,
    false,
    'pduType',
    (p, r) => {
      const s = pick(r, pduSegs(p));
      const v = pick(r, [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x10, 0x7f, 0xff, int(r, 256)]);
      s.bytes = copy(s.bytes);
      s.bytes[0] = v;
      return `pduType(${s.kind}=0x${v.toString(16)})`;
    },
  ],
  [
    10,
    false,
    'pduLength',
    (p, r) => {
      const s = pick(r, pduSegs(p));
      s.bytes = copy(s.bytes);
      const old = s.bytes.readUInt32BE(2);
      const v = r() < 0.8 ? Math.max(0, old + pick(r, DELTAS)) : pick(r, [0, 0xffffffff, 0x80000000, 0x10000]);
      s.bytes.writeUInt32BE(v >>> 0, 2);
      return `pduLength(${s.kind} ${old}->${v})`;
    },
  ],
  [
    8,
    false,
    'pdvLength',
    (p, r) => {
      const s = pick(r, pduSegs(p, ['command', 'data']));
      s.bytes = copy(s.bytes);
      const old = s.bytes.readUInt32BE(6);
      const v = r() < 0.8 ? Math.max(0, old + pick(r, DELTAS)) : pick(r, [0, 1, 0xffffffff]);
      s.bytes.writeUInt32BE(v >>> 0, 6);
      return `pdvLength(${s.kind} ${old}->${v})`;
    },
  ],
  [
    5,
    false,
    'pdvContext',
    (p, r) => {
      const s = pick(r, pduSegs(p, ['command', 'data']));
      const v = pick(r, [0, 2, 3, 5, 255, int(r, 256)]);
      s.bytes = copy(s.bytes);
      s.bytes[10] = v;
      return `pdvContext(${s.kind}=${v})`;
    },
  ],
  [
    6,
    false,
    'pdvControl',
    (p, r) => {
      const s = pick(r, pduSegs(p, ['command', 'data']));
      const v = pick(r, [0, 1, 2, 3, int(r, 256)]);
      s.bytes = copy(s.bytes);
      s.bytes[11] = v;
      return `pdvControl(${s.kind}=0x${v.toString(16)})`;
    },
  ],
  [
    8,
    false,
    'rqItemLength',
    (p, r) => {
      const s = p.segs.find((x) => x.kind === 'rq')!;
      const at = pick(r, rqLengthFields(s.bytes));
      s.bytes = copy(s.bytes);
      const old = s.bytes.readUInt16BE(at);
      const v = r() < 0.8 ? Math.max(0, old + pick(r, [-50, -3, -2, -1, 1, 2, 3, 50])) : pick(r, [0, 0xffff]);
      s.bytes.writeUInt16BE(v & 0xffff, at);
      return `rqItemLength(@${at} ${old}->${v})`;
    },
  ],
  [
    5,
    false,
    'commandElementLength',
    (p, r) => {
      const s = p.segs.find((x) => x.kind === 'command')!;
      const at = pick(r, commandLengthFields(s.bytes));
      s.bytes = copy(s.bytes);
      const old = s.bytes.readUInt32LE(at);
      const v = r() < 0.8 ? Math.max(0, old + pick(r, [-2, -1, 1, 2, 100])) : pick(r, [0, 0xffffffff]);
      s.bytes.writeUInt32LE(v >>> 0, at);
      return `commandElementLength(@${at} ${old}->${v})`;
    },
  ],
  [
    4,
    false,
    'drop',
    (p, r) => {
      const i = int(r, p.segs.length);
      const [s] = p.segs.splice(i, 1);
      return `drop(${s!.kind}#${i})`;
    },
  ],
  [
    4,
    false,
    'duplicate',
    (p, r) => {
      const i = int(r, p.segs.length);
      p.segs.splice(i + 1, 0, { ...p.segs[i]! });
      return `duplicate(${p.segs[i]!.kind}#${i})`;
    },
  ],
  [
    4,
    false,
    'swap',
    (p, r) => {
      const i = int(r, p.segs.length);
      const j = (i + 1 + int(r, p.segs.length - 1)) % p.segs.length;
      [p.segs[i], p.segs[j]] = [p.segs[j]!, p.segs[i]!];
      return `swap(#${i},#${j})`;
    },
  ],
  [
    3,
    false,
    'garbage',
    (p, r) => {
      const i = 1 + int(r, p.segs.length - 1);
      const g = Buffer.from(Array.from({ length: 6 + int(r, 40) }, () => int(r, 256)));
      g[0] = 0x08 + int(r, 0xf8);
      p.segs.splice(i, 0, { bytes: g, kind: 'garbage' });
      return `garbage(${g.length} bytes before #${i})`;
    },
  ],
  [
    8,
    false,
    'truncate',
    (p, r) => {
      const total = p.segs.reduce((n, s) => n + s.bytes.length, 0);
      p.cut = int(r, total);
      p.tail = pick(r, ['silence', 'fin', 'rst'] as const);
      return `truncate(${p.cut} of ${total}, ${p.tail})`;
    },
  ],
  [
    5,
    true,
    'rechunk',
    (p, r) => {
      for (const s of p.segs) s.pieces = Array.from({ length: 1 + int(r, 4) }, () => int(r, s.bytes.length));
      return 'rechunk';
    },
  ],
  [
    3,
    true,
    'reserved',
    (p, r) => {
      const s = pick(r, pduSegs(p));
      s.bytes = copy(s.bytes);
      const at = s.kind === 'rq' && r() < 0.5 ? pick(r, [8, 9, 42 + int(r, 32)]) : 1;
      s.bytes[at] = 1 + int(r, 255);
      return `reserved(${s.kind}@${at})`;
    },
  ],
  [
    2,
    true,
    'callingAe',
    (p, r) => {
      const s = p.segs.find((x) => x.kind === 'rq')!;
      const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-. ';
      const ae = Array.from({ length: 1 + int(r, 16) }, (_, k) => (k === 0 ? 'Q' : pick(r, [...chars]))).join('');
      s.bytes = copy(s.bytes);
      Buffer.from(ae.padEnd(16, ' '), 'latin1').copy(s.bytes, 26);
      return `callingAe("${ae}")`;
    },
  ],
  [
    4,
    true,
    'pixel',
    (p, r) => {
      const data = p.segs.filter((s) => s.kind === 'data' && s.dsOffset !== undefined);
      const s = pick(r, data);
      // Only bytes of the Pixel Data value: the last 2048 bytes of the data set span every data segment's tail.
      const pixelFrom = Math.max(0, s.bytes.length - 12 - 256);
      const i = 12 + pixelFrom + int(r, s.bytes.length - 12 - pixelFrom);
      s.bytes = copy(s.bytes);
      s.bytes[i]! ^= 0xff;
      return `pixel(${s.kind}@${i})`;
    },
  ],
];

const TOTAL = OPS.reduce((n, [w]) => n + w, 0);

/** One mutated exchange for `seed` (1 operator, sometimes 2). */
export function mutate(ex: StoreExchange, seed: number): Plan {
  const r = prng(seed);
  const plan = basePlan(ex);
  const n = r() < 0.15 ? 2 : 1;
  for (let k = 0; k < n; k++) {
    let x = r() * TOTAL;
    const entry = OPS.find(([w]) => (x -= w) < 0) ?? OPS[0]!;
    const [, neutral, , op] = entry;
    plan.ops.push(op(plan, r));
    plan.neutral &&= neutral;
  }
  return plan;
}

/** Plays a plan: each segment (cut into its TCP writes), the waits, the cut and the tail. */
export async function playPlan(sc: Script, plan: Plan): Promise<void> {
  let sent = 0;
  for (const seg of plan.segs) {
    let bytes = seg.bytes;
    const cutHere = plan.cut !== undefined && sent + bytes.length > plan.cut;
    if (cutHere) bytes = bytes.subarray(0, plan.cut! - sent);
    if (seg.pieces && !cutHere) await sc.s.sendPieces(bytes, seg.pieces);
    else if (bytes.length) sc.s.send(bytes);
    sent += bytes.length;
    if (cutHere) break;
    if (seg.await === 'AC') await sc.ac();
    if (seg.await === 'STATUS') await sc.status();
  }
  if (plan.tail === 'silence') sc.linger();
  if (plan.tail === 'fin') sc.s.end();
  if (plan.tail === 'rst') sc.s.reset();
}

export type Expectation = 'refuse-assoc' | 'refuse-store' | 'succeed' | 'any';

/** What PS3.8 lets the node do with this plan, given the A-ASSOCIATE-AC it sent (if any). */
export function expectation(plan: Plan, ac: AcEvent | undefined): { expect: Expectation; why: string } {
  let stream = Buffer.concat(plan.segs.map((s) => s.bytes));
  if (plan.cut !== undefined) stream = stream.subarray(0, plan.cut);
  if (stream.length < 6) return { expect: 'refuse-assoc', why: 'no whole PDU header' };
  const end = 6 + stream.readUInt32BE(2);
  if (end > stream.length) return { expect: 'refuse-assoc', why: 'first PDU incomplete' };
  const rq = checkRq(stream.subarray(0, end), 'SCANNODE');
  if (rq.kind === 'invalid') return { expect: 'refuse-assoc', why: rq.why };
  if (rq.kind === 'unsure') return { expect: 'any', why: rq.why };
  const ok = plan.neutral ? 'succeed' : 'any';
  if (!ac) return { expect: ok, why: 'valid A-ASSOCIATE-RQ' };
  const accepted = new Map<number, string>();
  for (const [id, c] of ac.contexts) if (c.result === 0) accepted.set(id, rq.content!.contexts.get(id) ?? '?');
  const sv = checkStream(stream.subarray(end), accepted, ac.maxLength ?? 0);
  if (sv.unsure) return { expect: 'any', why: sv.unsure };
  if (!sv.storeComplete) return { expect: 'refuse-store', why: sv.why ?? '' };
  return { expect: ok, why: 'store complete and valid at the UL level' };
}
