/**
 * C-STORE SCU over the edge's own upper layer in the requestor role (as scuEventReport.ts): one association, every
 * presentation context the instances need (each instance's own transfer syntax, no transcoding), then one C-STORE
 * after the other. Each data set is streamed from its source in P-DATA-TF fragments of the peer's maximum PDU
 * length, waiting for the socket to drain, so no data set is ever held whole in memory. dcmjs-dimse's SCU keeps every
 * sent data set in memory (64-97 inst/s measured), which is why this one is ours.
 * Resolves with one outcome per instance; rejects only when the association cannot be made at all.
 */
import { realClock } from './clock.js';
import { encodeCommandSet } from './commandSet.js';
import { DATA_SET_PRESENT, MessageAssembler, type CommandSet } from './dimseMessages.js';
import { pdataPdus, PduType, PDU_HEADER, PDV_HEADER, PDV_LAST } from './pdu.js';
import { rejectText } from './rejectTable.js';
import type { TlsClientFiles } from './tls.js';
import { requestorAssociateRq, requestorTransport } from './requestorTransport.js';
import { UpperLayer } from './upperLayer.js';
import type { Logger } from '../logging/logger.js';

/** PS3.8 9.3.2: presentation context ids are odd, 1-255. */
const MAX_CONTEXTS = 128;

export interface StorePeer {
  aeTitle: string;
  host: string;
  port: number;
  tls?: TlsClientFiles;
}

/** Where a data set's bytes are read from, piece by piece, straight into the PDUs that carry them. */
export interface DatasetSource {
  /** Reads the data set from `position` into `into`, in order (one readv); resolves the count read (short: retry). */
  readv(into: Buffer[], position: number): Promise<number>;
  close(): Promise<void>;
}

/** Bytes of a data set read at once (into as many PDUs as they fill): the most held per instance in flight. */
const READ_BATCH = 1 << 20;

/** One instance to send: its UIDs, its transfer syntax, and its data set (without the Part 10 meta). */
export interface StoreItem {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Bytes of the data set, for the last fragment's flag. */
  datasetLength: number;
  /** Opens the data set for reading (e.g. the file, from the data set's offset). */
  open(): Promise<DatasetSource>;
}

export interface StoreOutcome {
  sopInstanceUid: string;
  /** The C-STORE-RSP status; undefined when the instance was not sent or got no answer. */
  status?: number;
  /** Why it was not stored, in words (refused context, association ended, read error). */
  error?: string;
}

export interface StoreOptions {
  callingAe: string;
  implementationClassUid: string;
  implementationVersionName?: string;
  log: Logger;
  /** Longest wait for one C-STORE-RSP, and for the association to open (default 60 s). */
  timeoutMs?: number;
}

/** The association could not be made (connection refused, rejected, timed out before the A-ASSOCIATE-AC). */
export class StoreAssociationError extends Error {
  override name = 'StoreAssociationError';
}

/** The presentation contexts of a set of instances: one per (SOP class, transfer syntax). */
export function storeContexts(items: readonly StoreItem[]): Map<string, number> {
  const ids = new Map<string, number>();
  for (const i of items) {
    const key = `${i.sopClassUid}\\${i.transferSyntaxUid}`;
    if (!ids.has(key) && ids.size < MAX_CONTEXTS) ids.set(key, 2 * ids.size + 1);
  }
  return ids;
}

export async function storeInstances(
  peer: StorePeer,
  items: readonly StoreItem[],
  opts: StoreOptions,
): Promise<StoreOutcome[]> {
  const contexts = storeContexts(items);
  const link = await associate(peer, contexts, opts);
  const outcomes: StoreOutcome[] = [];
  const pcOf = (item: StoreItem) => {
    const pcId = contexts.get(`${item.sopClassUid}\\${item.transferSyntaxUid}`);
    return pcId !== undefined && link.accepted.has(pcId) ? pcId : undefined;
  };
  const sendable = items.filter((i) => pcOf(i) !== undefined);
  // The next instance is opened and its first PDUs read while the destination answers the one before.
  let next: Promise<Prepared> | undefined = sendable[0] && link.prepare(pcOf(sendable[0])!, sendable[0]);
  let sent = 0;
  try {
    let messageId = 0;
    for (const item of items) {
      const pcId = pcOf(item);
      if (pcId === undefined) {
        outcomes.push({
          sopInstanceUid: item.sopInstanceUid,
          error: `the destination does not take ${item.sopClassUid} in ${item.transferSyntaxUid}`,
        });
        continue;
      }
      // Once the association has ended nothing more is read ahead: `prepared` is then undefined.
      const prepared = next;
      const after = sendable[++sent];
      next = after && !link.ended ? link.prepare(pcOf(after)!, after) : undefined;
      if (link.ended !== undefined || prepared === undefined) {
        if (prepared) await discard(prepared);
        outcomes.push({ sopInstanceUid: item.sopInstanceUid, error: link.ended ?? 'the association has ended' });
        continue;
      }
      messageId = (messageId % 0xffff) + 1;
      outcomes.push(await link.store(pcId, messageId, item, prepared));
    }
  } finally {
    if (next) await discard(next);
    await link.close();
  }
  return outcomes;
}

/** An instance opened for sending, with its first PDUs read (or why it could not be). */
type Prepared = { source: DatasetSource; first: Batch } | { error: string };
type Batch = { pdus: Buffer[]; next: number };

async function discard(p: Promise<Prepared>): Promise<void> {
  const r = await p;
  if ('source' in r) await r.source.close().catch(() => undefined);
}

interface Link {
  accepted: Set<number>;
  /** Why the association ended early, once it has. */
  ended: string | undefined;
  prepare(pcId: number, item: StoreItem): Promise<Prepared>;
  store(pcId: number, messageId: number, item: StoreItem, prepared: Promise<Prepared>): Promise<StoreOutcome>;
  close(): Promise<void>;
}

function associate(peer: StorePeer, contexts: Map<string, number>, opts: StoreOptions): Promise<Link> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise<Link>((resolve, reject) => {
    let failure: string | undefined;
    let opened = false;
    let closedResolve: () => void = () => undefined;
    const closed = new Promise<void>((r) => (closedResolve = r));
    /** The answer awaited for the C-STORE in flight. */
    let waiting: { messageId: number; done: (status: number | undefined, error?: string) => void } | undefined;
    const assembler = new MessageAssembler({
      command: (_pc, c: CommandSet) => {
        if (c.CommandField === 0x8001 && waiting && c.MessageIDBeingRespondedTo === waiting.messageId) {
          const w = waiting;
          waiting = undefined;
          w.done(Number(c.Status));
        } else {
          ul.abort(`unexpected command 0x${Number(c.CommandField).toString(16)}`);
        }
        return undefined;
      },
      invalid: (_r, detail) => ul.abort(detail),
      unreadable: (detail) => ul.abort(detail),
    });
    const rq = requestorAssociateRq({
      calledAe: peer.aeTitle,
      callingAe: opts.callingAe,
      presentationContexts: [...contexts].map(([key, id]) => {
        const [abstractSyntax, ts] = key.split('\\') as [string, string];
        return { id, abstractSyntax, transferSyntaxes: [ts] };
      }),
      implementationClassUid: opts.implementationClassUid,
      implementationVersionName: opts.implementationVersionName,
    });
    const openTimer = setTimeout(() => {
      failure = 'timed out opening the association';
      ul.abort(failure);
    }, timeoutMs);
    openTimer.unref();
    const link: Link = {
      accepted: new Set(),
      ended: undefined,
      prepare: async (pcId, item) => {
        let source: DatasetSource | undefined;
        try {
          source = await item.open();
          return { source, first: await readBatch(source, pcId, item, 0, ul.peerMaxPdu) };
        } catch (err) {
          await source?.close().catch(() => undefined);
          return { error: `cannot read the data set: ${String(err)}` };
        }
      },
      store: async (pcId, messageId, item, preparing) => {
        const prepared = await preparing;
        if ('error' in prepared) {
          // Nothing of it went out: the association goes on with the next instance.
          return { sopInstanceUid: item.sopInstanceUid, error: prepared.error };
        }
        const answer = new Promise<StoreOutcome>((done) => {
          const timer = setTimeout(() => {
            waiting = undefined;
            ul.abort('timed out waiting for the C-STORE-RSP');
            done({ sopInstanceUid: item.sopInstanceUid, error: 'timed out waiting for the C-STORE-RSP' });
          }, timeoutMs);
          timer.unref();
          waiting = {
            messageId,
            done: (status, error) => {
              clearTimeout(timer);
              done({ sopInstanceUid: item.sopInstanceUid, ...(status !== undefined ? { status } : {}), error });
            },
          };
        });
        const command = encodeCommandSet({
          CommandField: 0x0001,
          MessageID: messageId,
          Priority: 0,
          AffectedSOPClassUID: item.sopClassUid,
          AffectedSOPInstanceUID: item.sopInstanceUid,
          CommandDataSetType: DATA_SET_PRESENT,
        });
        if (!command) {
          await prepared.source.close();
          return { sopInstanceUid: item.sopInstanceUid, error: 'cannot encode the C-STORE-RQ' };
        }
        const max = ul.peerMaxPdu;
        ul.send(pdataPdus(pcId, true, command, max));
        try {
          await sendDataset(pcId, item, max, prepared);
        } catch (err) {
          waiting = undefined;
          ul.abort(`cannot read the data set: ${String(err)}`);
          return { sopInstanceUid: item.sopInstanceUid, error: `cannot read the data set: ${String(err)}` };
        }
        return answer;
      },
      close: async () => {
        if (!link.ended) ul.release();
        await closed;
      },
    };
    /**
     * The data set in P-DATA-TF PDUs of at most the peer's maximum length, read from the source straight into the
     * PDUs' own buffers (no copy), a batch at a time; the next batch is read while the socket drains this one.
     */
    const sendDataset = async (
      pcId: number,
      item: StoreItem,
      max: number,
      { source, first }: { source: DatasetSource; first: Batch },
    ): Promise<void> => {
      let ahead: Promise<Batch> | undefined;
      try {
        let batch = first;
        for (;;) {
          ahead = batch.next < item.datasetLength ? readBatch(source, pcId, item, batch.next, max) : undefined;
          if (link.ended) throw new Error(link.ended);
          ul.send(batch.pdus);
          if (!ahead) break;
          const socket = transport.socket;
          if (socket?.writableNeedDrain) await new Promise((r) => socket.once('drain', r).once('close', r));
          batch = await ahead;
        }
      } finally {
        // A read still in flight when sending stopped: let it end before the source closes.
        await ahead?.catch(() => undefined);
        await source.close();
      }
    };
    const transport = requestorTransport(
      peer,
      () => ul,
      (message) => (failure ??= message),
    );
    const ul: UpperLayer = new UpperLayer(
      transport,
      {
        associateConfirmation: (a) => {
          clearTimeout(openTimer);
          if ('rj' in a) {
            failure = `association rejected: ${rejectText(a.rj.result, a.rj.source, a.rj.reason)}`;
            return;
          }
          for (const pc of a.ac.presentationContexts) if (pc.result === 0) link.accepted.add(pc.id);
          opened = true;
          resolve(link);
        },
        pdv: (pc, control, piece, end) => assembler.pdv(pc, control, piece, end),
        releaseIndication: () => ul.releaseResponse(),
        releaseConfirmation: () => undefined,
        abortIndication: (info) => (failure ??= `aborted: ${info.detail}`),
        closed: () => {
          clearTimeout(openTimer);
          link.ended ??= failure ?? 'the association closed';
          if (waiting) {
            const w = waiting;
            waiting = undefined;
            w.done(undefined, link.ended);
          }
          closedResolve();
          if (!opened) {
            reject(new StoreAssociationError(`${peer.aeTitle}@${peer.host}:${peer.port}: ${link.ended}`));
          }
        },
      },
      {
        role: 'requestor',
        clock: realClock,
        artimMs: 30_000,
        idleMs: timeoutMs,
        log: opts.log,
        logMeta: { peer: `${peer.aeTitle}@${peer.host}:${peer.port}` },
      },
    );
    ul.associate(rq);
  });
}

/**
 * The PDUs of up to READ_BATCH bytes of a data set from `position`, each of at most the peer's maximum length (`max`,
 * 0: no limit), filled by one readv (more when it comes back short).
 */
async function readBatch(
  source: DatasetSource,
  pcId: number,
  item: StoreItem,
  position: number,
  max: number,
): Promise<Batch> {
  const room = max > 0 ? max - PDV_HEADER : READ_BATCH;
  const end = Math.min(item.datasetLength, position + Math.max(room, READ_BATCH));
  const pdus: Buffer[] = [];
  const views: Buffer[] = [];
  for (let at = position; at < end;) {
    const length = Math.min(room, end - at);
    const pdu = Buffer.allocUnsafe(PDU_HEADER + PDV_HEADER + length);
    at += length;
    pdu[0] = PduType.PDataTf;
    pdu[1] = 0;
    pdu.writeUInt32BE(PDV_HEADER + length, 2);
    pdu.writeUInt32BE(2 + length, 6);
    pdu[10] = pcId;
    pdu[11] = at >= item.datasetLength ? PDV_LAST : 0;
    pdus.push(pdu);
    views.push(pdu.subarray(PDU_HEADER + PDV_HEADER));
  }
  for (let got = 0, want = end - position; got < want;) {
    const n = await source.readv(skip(views, got), position + got);
    if (n === 0) throw new Error(`the data set ends at ${position + got} of ${item.datasetLength} bytes`);
    got += n;
  }
  return { pdus, next: end };
}

/** The views past their first `n` bytes (after a short read). */
function skip(views: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const v of views) {
    if (n >= v.length) n -= v.length;
    else {
      out.push(n ? v.subarray(n) : v);
      n = 0;
    }
  }
  return out;
}
