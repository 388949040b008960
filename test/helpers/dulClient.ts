/**
 * A DICOM SCU for tests built on scannode's own upper layer in the requestor role (src/dimse/upperLayer.ts): it sends
 * DIMSE messages with data sets of our choosing (100 000 nested sequences, bytes no encoder would write) and reports
 * what came back. It also shows the upper layer and the DIMSE message layer working for a requestor.
 */
import net from 'node:net';
import tls from 'node:tls';
import { realClock } from '../../src/dimse/clock.js';
import type { AssociateAc, AssociateRq } from '../../src/dimse/associatePdu.js';
import { MessageAssembler, encodeMessage, type CommandSet } from '../../src/dimse/dimseMessages.js';
import type { RejectPdu } from '../../src/dimse/pdu.js';
import { UpperLayer, type AbortInfo } from '../../src/dimse/upperLayer.js';
import { fakeLog } from './log.js';
import { associateRq } from './associateRq.js';

export interface DulContext {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export interface DulResponse {
  command: CommandSet;
  dataset: Buffer | undefined;
}

export interface DulAssociation {
  ac: AssociateAc;
  /** Sends a request and resolves with its response (one at a time). */
  request(pcId: number, command: CommandSet, dataset?: Buffer): Promise<DulResponse>;
  release(): Promise<void>;
  abort(): void;
  /** Resolves when the connection is closed, with how (if it was aborted). */
  closed: Promise<AbortInfo | undefined>;
}

export class DulRejected extends Error {
  constructor(readonly rj: RejectPdu) {
    super(`rejected (result ${rj.result}, source ${rj.source}, reason ${rj.reason})`);
  }
}

export function dulAssociate(opts: {
  port: number;
  calledAe?: string;
  callingAe?: string;
  contexts: DulContext[];
  maxPdu?: number;
  tls?: tls.ConnectionOptions;
}): Promise<DulAssociation> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket | undefined;
    let pending: { resolve(r: DulResponse): void; reject(e: Error): void } | undefined;
    let command: CommandSet | undefined;
    let data: Buffer[] = [];
    let releaseDone: (() => void) | undefined;
    let aborted: AbortInfo | undefined;
    let closedResolve: (a: AbortInfo | undefined) => void = () => undefined;
    const closed = new Promise<AbortInfo | undefined>((r) => (closedResolve = r));
    const deliver = () => {
      const p = pending;
      pending = undefined;
      p?.resolve({ command: command!, dataset: data.length ? Buffer.concat(data) : undefined });
    };
    const assembler = new MessageAssembler({
      command: (_pc, c, hasDataset) => {
        command = c;
        data = [];
        if (!hasDataset) {
          deliver();
          return undefined;
        }
        return { write: (p) => data.push(Buffer.from(p)), end: deliver, abort: () => undefined };
      },
      invalid: (_r, detail) => ul.abort(detail),
      unreadable: (detail) => ul.abort(detail),
    });
    const rq: AssociateRq = associateRq({
      calledAe: opts.calledAe ?? 'SCANNODE',
      callingAe: opts.callingAe ?? 'DULSCU',
      presentationContexts: opts.contexts,
      maxLength: opts.maxPdu ?? 65536,
    });
    const ul: UpperLayer = new UpperLayer(
      {
        connect: () => {
          const onConnect = () => {
            socket!.setNoDelay(true);
            ul.transportConfirmation();
          };
          socket = opts.tls
            ? tls.connect({ host: '127.0.0.1', port: opts.port, ...opts.tls }, onConnect)
            : net.connect(opts.port, '127.0.0.1', onConnect);
          socket.on('data', (chunk: Buffer) => ul.input(chunk));
          socket.on('error', () => undefined);
          socket.on('close', () => ul.transportClosed());
        },
        write: (b) => socket!.write(b),
        end: () => socket!.end(),
        destroy: () => socket!.destroy(),
      },
      {
        associateConfirmation: (a) => {
          if ('rj' in a) return reject(new DulRejected(a.rj));
          resolve({
            ac: a.ac,
            request: (pcId, c, dataset) =>
              new Promise((res, rej) => {
                pending = { resolve: res, reject: rej };
                ul.send(encodeMessage(pcId, c, dataset, ul.peerMaxPdu)!);
              }),
            release: () =>
              new Promise<void>((res) => {
                releaseDone = res;
                ul.release();
              }),
            abort: () => ul.abort('the test aborts'),
            closed,
          });
        },
        pdv: (pc, control, piece, end) => assembler.pdv(pc, control, piece, end),
        releaseIndication: () => ul.releaseResponse(),
        releaseConfirmation: () => releaseDone?.(),
        abortIndication: (a) => {
          aborted = a;
          pending?.reject(new Error(`aborted: ${a.detail} (source ${a.source}, reason ${a.reason})`));
          pending = undefined;
        },
        closed: () => {
          pending?.reject(new Error('closed without a response'));
          reject(new Error(aborted ? `aborted: ${aborted.detail}` : 'closed before the association was accepted'));
          releaseDone?.();
          closedResolve(aborted);
        },
      },
      { role: 'requestor', clock: realClock, artimMs: 10_000, idleMs: 60_000, log: fakeLog().log, logMeta: {} },
    );
    ul.associate(rq);
  });
}
