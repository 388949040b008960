/**
 * Runs one scripted raw-socket case against the node and judges it the same way for every case: did the node end it
 * (RJ, A-ABORT, release or close) within its timers, did it accept something PS3.8 says it must refuse, did it answer
 * with the source and reason PS3.8 gives. Also the C-ECHO from a fresh connection the suites run after each case.
 */
import { ParrotSession, TERMINAL, describe, type NodeEvent } from './parrotSession.js';
import { associateRq, fragments, releaseRq, UID } from './parrot.js';
import { echoRq } from './parrotDimse.js';

export interface Timers {
  /** dicom.artimTimeoutSeconds and dicom.idleTimeoutSeconds the node runs with, in ms. */
  artimMs: number;
  idleMs: number;
  /** Slack on a loaded machine: a case still open this long after the node's timer should have fired is a hang. */
  marginMs: number;
}

export const hangMs = (t: Timers): number => Math.max(t.artimMs, t.idleMs) + t.marginMs;

/** Thrown by a script step when the node ended the exchange early (the judge looks at what it said). */
export class Stop extends Error {}

export type AcEvent = Extract<NodeEvent, { kind: 'AC' }>;

export interface Script {
  s: ParrotSession;
  port: number;
  timers: Timers;
  /** Waits for the answer to an A-ASSOCIATE-RQ; anything but AC stops the script. */
  ac(): Promise<AcEvent>;
  /** Waits for the next DIMSE response's status; a terminal event stops the script. */
  status(): Promise<number | undefined>;
  /** Gives the node `ms` to object; when it stays silent, sends A-RELEASE-RQ to see whether it carries on. */
  probe(ms?: number): Promise<void>;
  /** After the script the peer neither sends nor closes: the node must close within its timers. */
  linger(): void;
}

export interface Observed {
  name: string;
  events: NodeEvent[];
  accepted: boolean;
  /** Statuses of every DIMSE response the node sent. */
  statuses: number[];
  /** The first RJ / A-ABORT / A-RELEASE-RP / close / reset. */
  terminal: NodeEvent | undefined;
  /** The node neither answered nor closed within its timers plus margin after our last byte. */
  hang: boolean;
  /** ms from our last byte to the end. */
  endMs: number;
  timers: Timers;
}

export interface Verdict {
  acceptedBad?: string;
  wrong?: string;
}

export type Check = (o: Observed) => Verdict;

export async function runScript(
  name: string,
  port: number,
  timers: Timers,
  script: (sc: Script) => Promise<void>,
): Promise<Observed> {
  const s = await ParrotSession.connect(port);
  const limit = hangMs(timers);
  let lingering = false;
  const sc: Script = {
    s,
    port,
    timers,
    async ac() {
      const e = await s.until((x) => x.kind === 'AC', limit);
      if (e.kind !== 'AC') throw new Stop();
      return e;
    },
    async status() {
      const e = await s.until((x) => x.kind === 'PDATA' && x.commands.length > 0, limit);
      if (e.kind !== 'PDATA') throw new Stop();
      return e.commands[0]!.status;
    },
    async probe(ms = 1000) {
      const e = await s.until(() => false, ms);
      if (e.kind !== 'TIMEOUT') throw new Stop();
      s.send(releaseRq());
    },
    linger() {
      lingering = true;
    },
  };
  try {
    await script(sc);
  } catch (err) {
    if (!(err instanceof Stop)) {
      s.destroy();
      throw err;
    }
  }
  // After the script: wait for the node to end it (a peer closes on RJ, A-ABORT and A-RELEASE-RP; a lingering one
  // waits for the node's close).
  const deadline = s.lastSentAt + limit;
  let hang = false;
  for (;;) {
    const terminal = s.events.find((e) => TERMINAL.has(e.kind));
    if (s.closed || (terminal && !lingering)) break;
    const left = deadline - Date.now();
    if (left <= 0) {
      hang = true;
      break;
    }
    await s.until((e) => TERMINAL.has(e.kind), left);
  }
  const end = s.events.find((e) => e.kind === 'CLOSE' || e.kind === 'RESET' || (!lingering && TERMINAL.has(e.kind)));
  s.destroy();
  const statuses = s.events.flatMap((e) =>
    e.kind === 'PDATA' ? e.commands.flatMap((c) => (c.status === undefined ? [] : [c.status])) : [],
  );
  return {
    name,
    events: s.events,
    accepted: s.events.some((e) => e.kind === 'AC'),
    statuses,
    terminal: s.events.find((e) => TERMINAL.has(e.kind)),
    hang,
    endMs: (end?.at ?? Date.now()) - s.lastSentAt,
    timers,
  };
}

export function trace(o: Observed): string {
  return o.events.map((e) => describe(e)).join(' -> ') || 'nothing';
}

// -- judges ----------------------------------------------------------------------------------------------------

const fmt = (o: Observed) => trace(o);

/** A-ASSOCIATE-RJ with one of these (result, source, reason) triples. */
export function rj(...allowed: Array<[number, number, number]>): Check {
  return (o) => {
    if (o.accepted) return { acceptedBad: `A-ASSOCIATE-AC: ${fmt(o)}` };
    const t = o.terminal;
    if (t?.kind === 'RJ' && allowed.some(([r, s, n]) => t.result === r && t.source === s && t.reason === n)) return {};
    return { wrong: `want RJ ${allowed.map((a) => `(${a.join(',')})`).join(' or ')}: ${fmt(o)}` };
  };
}

/** Anything but an association: RJ, A-ABORT or a close. */
export const refused: Check = (o) => (o.accepted ? { acceptedBad: `A-ASSOCIATE-AC: ${fmt(o)}` } : {});

/** An A-ABORT (before or instead of any association) with one of these sources; no AC. */
export function abortNoAc(sources: number[], reasons?: number[]): Check {
  return (o) => {
    if (o.accepted) return { acceptedBad: `A-ASSOCIATE-AC: ${fmt(o)}` };
    return abortIs(o, sources, reasons);
  };
}

function abortIs(o: Observed, sources: number[], reasons?: number[]): Verdict {
  const t = o.terminal;
  if (t?.kind === 'ABORT' && sources.includes(t.source) && (!reasons || reasons.includes(t.reason))) return {};
  return {
    wrong: `want A-ABORT source ${sources.join('|')}${reasons ? ` reason ${reasons.join('|')}` : ''}: ${fmt(o)}`,
  };
}

/**
 * The association was accepted, then the peer broke the protocol: A-ABORT with this source and reason. A Success for
 * the broken message, or a release answered as if nothing happened, is accepted-bad.
 */
export function abortAfterAc(sources: number[], reasons?: number[]): Check {
  return (o) => {
    if (o.statuses.includes(0)) return { acceptedBad: `Success for a broken message: ${fmt(o)}` };
    if (o.terminal?.kind === 'RELEASE_RP') return { acceptedBad: `carried on and released: ${fmt(o)}` };
    if (!o.accepted) return { wrong: `the valid A-ASSOCIATE-RQ was not accepted: ${fmt(o)}` };
    return abortIs(o, sources, reasons);
  };
}

/** The store (or N-CREATE) did not get Success: a failure status in [lo, hi], or an A-ABORT when `abortOk`. */
export function failed(lo: number, hi: number, abortOk = true): Check {
  return (o) => {
    if (o.statuses.includes(0)) return { acceptedBad: `Success: ${fmt(o)}` };
    if (o.statuses.some((s) => s >= lo && s <= hi)) return {};
    if (abortOk && o.terminal?.kind === 'ABORT') return {};
    return { wrong: `want status 0x${lo.toString(16)}-0x${hi.toString(16)}${abortOk ? ' or A-ABORT' : ''}: ${fmt(o)}` };
  };
}

/** A valid exchange must work: AC, every response Success, A-RELEASE-RP. */
export const succeeds: Check = (o) => {
  if (!o.accepted || o.statuses.some((s) => s !== 0) || o.terminal?.kind !== 'RELEASE_RP')
    return { wrong: `a valid exchange was refused: ${fmt(o)}` };
  return {};
};

/** An A-ABORT from either source came before the close (an idle association is aborted, not just dropped). */
export const aborted: Check = (o) =>
  o.events.some((e) => e.kind === 'ABORT') ? {} : { wrong: `want an A-ABORT before the close: ${fmt(o)}` };

/** Only liveness and timers matter. */
export const ends: Check = () => ({});

export function both(...checks: Check[]): Check {
  return (o) => {
    const vs = checks.map((c) => c(o));
    return { acceptedBad: vs.find((v) => v.acceptedBad)?.acceptedBad, wrong: vs.find((v) => v.wrong)?.wrong };
  };
}

/** The node closes by itself (after its RJ / A-ABORT / release answer or its timer), within `ms(timers)` of our last byte. */
export function closesWithin(ms: (t: Timers) => number): Check {
  return (o) =>
    o.events.some((e) => e.kind === 'CLOSE' || e.kind === 'RESET') && o.endMs <= ms(o.timers)
      ? {}
      : { wrong: `want the node to close within ${ms(o.timers)} ms, it took ${o.endMs} ms: ${fmt(o)}` };
}

// -- the C-ECHO after each case ----------------------------------------------------------------------------------

/** A C-ECHO on a fresh connection: undefined when it succeeded, else what went wrong. */
export async function echoProblem(port: number, timeoutMs = 15_000): Promise<string | undefined> {
  let s: ParrotSession;
  try {
    s = await ParrotSession.connect(port, timeoutMs);
  } catch (err) {
    return `cannot connect: ${(err as Error).message}`;
  }
  try {
    s.send(
      associateRq({
        calling: 'ECHOCHECK',
        contexts: [{ id: 1, abstract: UID.verification, transfer: [UID.implicitLE] }],
      }),
    );
    const ac = await s.until((e) => e.kind === 'AC', timeoutMs);
    if (ac.kind !== 'AC') return `association: ${describe(ac)}`;
    if (ac.contexts.get(1)?.result !== 0) return `verification context not accepted: ${describe(ac)}`;
    for (const p of fragments(1, true, echoRq(7))) s.send(p);
    const rsp = await s.until((e) => e.kind === 'PDATA' && e.commands.length > 0, timeoutMs);
    if (rsp.kind !== 'PDATA' || rsp.commands[0]!.status !== 0) return `C-ECHO: ${describe(rsp)}`;
    s.send(releaseRq());
    const rp = await s.until((e) => e.kind === 'RELEASE_RP', timeoutMs);
    if (rp.kind !== 'RELEASE_RP') return `release: ${describe(rp)}`;
    return undefined;
  } finally {
    s.destroy();
  }
}
