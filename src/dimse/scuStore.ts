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

/** Where a data set's bytes are read from, piece by piece, straight into the PDU that carries them. */
export interface DatasetSource {
  /** Reads up to `length` bytes of the data set from `position` into `into` at `at`; resolves the count read. */
  read(into: Buffer, at: number, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

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
  try {
    let messageId = 0;
    for (const item of items) {
      const key = `${item.sopClassUid}\\${item.transferSyntaxUid}`;
      const pcId = contexts.get(key);
      if (pcId === undefined || !link.accepted.has(pcId)) {
        outcomes.push({
          sopInstanceUid: item.sopInstanceUid,
          error: `the destination does not take ${item.sopClassUid} in ${item.transferSyntaxUid}`,
        });
        continue;
      }
      if (link.ended) {
        outcomes.push({ sopInstanceUid: item.sopInstanceUid, error: link.ended });
        continue;
      }
      messageId = (messageId % 0xffff) + 1;
      outcomes.push(await link.store(pcId, messageId, item));
    }
  } finally {
    await link.close();
  }
  return outcomes;
}

interface Link {
  accepted: Set<number>;
  /** Why the association ended early, once it has. */
  ended: string | undefined;
  store(pcId: number, messageId: number, item: StoreItem): Promise<StoreOutcome>;
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
      store: async (pcId, messageId, item) => {
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
        if (!command) return { sopInstanceUid: item.sopInstanceUid, error: 'cannot encode the C-STORE-RQ' };
        const max = ul.peerMaxPdu;
        ul.send(pdataPdus(pcId, true, command, max));
        try {
          await sendDataset(pcId, item, max);
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
     * The data set in P-DATA-TF PDUs of at most the peer's maximum length, each read from the source straight into
     * the PDU's own buffer (no copy); the next one is read while the socket drains the one before (one ahead at most).
     */
    const sendDataset = async (pcId: number, item: StoreItem, max: number): Promise<void> => {
      const room = max > 0 ? max - PDV_HEADER : 1 << 20;
      const source = await item.open();
      const readPdu = async (position: number): Promise<{ pdu: Buffer; next: number }> => {
        const length = Math.min(room, item.datasetLength - position);
        const pdu = Buffer.allocUnsafe(PDU_HEADER + PDV_HEADER + length);
        for (let got = 0; got < length;) {
          const n = await source.read(pdu, PDU_HEADER + PDV_HEADER + got, length - got, position + got);
          if (n === 0) throw new Error(`the data set ends at ${position + got} of ${item.datasetLength} bytes`);
          got += n;
        }
        const next = position + length;
        pdu[0] = PduType.PDataTf;
        pdu[1] = 0;
        pdu.writeUInt32BE(PDV_HEADER + length, 2);
        pdu.writeUInt32BE(2 + length, 6);
        pdu[10] = pcId;
        pdu[11] = next >= item.datasetLength ? PDV_LAST : 0;
        return { pdu, next };
      };
      let ahead: Promise<{ pdu: Buffer; next: number }> | undefined;
      try {
        ahead = readPdu(0);
        for (;;) {
          const { pdu, next }: { pdu: Buffer; next: number } = await ahead;
          ahead = next < item.datasetLength ? readPdu(next) : undefined;
          if (link.ended) throw new Error(link.ended);
          ul.send([pdu]);
          if (!ahead) break;
          const socket = transport.socket;
          if (socket?.writableNeedDrain) await new Promise((r) => socket.once('drain', r).once('close', r));
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
