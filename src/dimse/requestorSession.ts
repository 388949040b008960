/**
 * Owns one association we open for a DIMSE exchange of a few messages (the storage commitment N-ACTION and
 * N-EVENT-REPORT): the A-ASSOCIATE-RQ, the accepted contexts, whole messages in (command set and bounded data set),
 * messages out encoded with their context's transfer syntax, an overall time limit, and how it ended. The C-STORE SCU
 * (scuStore.ts) streams files and keeps its own loop.
 */
import dimse from 'dcmjs-dimse';
import { realClock } from './clock.js';
import { MessageAssembler, encodeMessage, type CommandSet } from './dimseMessages.js';
import { DatasetCollector, parseNDataset } from './nDataset.js';
import { UpperLayer } from './upperLayer.js';
import { rejectText } from './rejectTable.js';
import { requestorAssociateRq, requestorTransport } from './requestorTransport.js';
import type { PresentationContextRq, RoleSelection } from './associatePdu.js';
import type { TlsClientFiles } from './tls.js';
import type { Logger } from '../logging/logger.js';

const { Dataset } = dimse;

export interface RequestorPeer {
  aeTitle: string;
  host: string;
  port: number;
  /** Present: the association runs over DICOM TLS. */
  tls?: TlsClientFiles;
}

export interface RequestorOptions {
  callingAe: string;
  implementationClassUid: string;
  implementationVersionName?: string;
  log: Logger;
  /** The whole exchange, from connecting to the close (default 30 s). */
  timeoutMs?: number;
}

export interface Session {
  /** The transfer syntax of an accepted context, undefined when it was not accepted. */
  accepted(pcId: number): string | undefined;
  /** Sends a message on an accepted context; false when its data set cannot be encoded (the session is aborted). */
  send(pcId: number, command: CommandSet, dataset?: Record<string, unknown>): boolean;
  /** Ends the exchange with an A-RELEASE. */
  release(): void;
  /** Ends it with an A-ABORT; `reason` becomes the failure the close reports. */
  fail(reason: string): void;
}

/** A data set that came with a message: naturalized, or why it could not be read. */
export type Received = { ok: true; dataset: Record<string, unknown> } | { ok: false; error: string } | undefined;

export interface Exchange<T> {
  contexts: PresentationContextRq[];
  roleSelections?: RoleSelection[];
  /** The association was accepted: send the first request. */
  start(session: Session): void;
  /** A whole message arrived (a response, or a request of the peer's) with its data set, if any. */
  message(session: Session, pcId: number, command: CommandSet, dataset: Received): void;
  /** The association ended: what the exchange yields, or throw. `failure`: why it did not end well, if it did not. */
  closed(failure: string | undefined): T;
}

export function runExchange<T>(peer: RequestorPeer, opts: RequestorOptions, ex: Exchange<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let failure: string | undefined;
    const contexts = new Map<number, string>();
    const session: Session = {
      accepted: (pcId) => contexts.get(pcId),
      send: (pcId, command, dataset) => {
        const ts = contexts.get(pcId);
        if (!ts) {
          session.fail(`presentation context ${pcId} was not accepted`);
          return false;
        }
        let bytes: Buffer | undefined;
        try {
          bytes = dataset ? new Dataset(dataset, ts).getDenaturalizedDataset() : undefined;
        } catch (err) {
          session.fail(`cannot encode the data set: ${String(err)}`);
          return false;
        }
        const pdus = encodeMessage(pcId, command, bytes, ul.peerMaxPdu);
        if (!pdus) {
          session.fail('cannot encode the command set');
          return false;
        }
        ul.send(pdus);
        return true;
      },
      release: () => ul.release(),
      fail: (reason) => {
        failure ??= reason;
        ul.abort(reason);
      },
    };
    const deliver = (pcId: number, command: CommandSet, dataset: Received): void => {
      try {
        ex.message(session, pcId, command, dataset);
      } catch (err) {
        session.fail(String(err));
      }
    };
    const assembler = new MessageAssembler({
      command: (pcId, command, hasDataset) => {
        if (!hasDataset) {
          deliver(pcId, command, undefined);
          return undefined;
        }
        return new DatasetCollector((bytes) => {
          const parsed = parseNDataset(bytes, contexts.get(pcId) ?? '');
          deliver(pcId, command, parsed.ok ? parsed : { ok: false, error: parsed.result.comment ?? 'unreadable' });
        });
      },
      invalid: (_r, detail) => session.fail(detail),
      unreadable: (detail) => session.fail(detail),
    });
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const timer = setTimeout(() => session.fail(`timed out after ${timeoutMs / 1000} s`), timeoutMs);
    timer.unref();
    const ul: UpperLayer = new UpperLayer(
      requestorTransport(
        peer,
        () => ul,
        (message) => (failure ??= message),
      ),
      {
        associateConfirmation: (a) => {
          if ('rj' in a) {
            failure ??= `association rejected: ${rejectText(a.rj.result, a.rj.source, a.rj.reason)}`;
            return;
          }
          for (const pc of a.ac.presentationContexts) if (pc.result === 0) contexts.set(pc.id, pc.transferSyntax);
          try {
            ex.start(session);
          } catch (err) {
            session.fail(String(err));
          }
        },
        pdv: (pc, control, piece, end) => assembler.pdv(pc, control, piece, end),
        releaseIndication: () => ul.releaseResponse(),
        releaseConfirmation: () => undefined,
        abortIndication: (info) => (failure ??= `aborted: ${info.detail}`),
        closed: () => {
          clearTimeout(timer);
          try {
            resolve(ex.closed(failure));
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        },
      },
      {
        role: 'requestor',
        clock: realClock,
        artimMs: 10_000,
        idleMs: Math.max(60_000, timeoutMs),
        log: opts.log,
        logMeta: { peer: `${peer.aeTitle}@${peer.host}:${peer.port}` },
      },
    );
    ul.associate(
      requestorAssociateRq({
        calledAe: peer.aeTitle,
        callingAe: opts.callingAe,
        presentationContexts: ex.contexts,
        implementationClassUid: opts.implementationClassUid,
        implementationVersionName: opts.implementationVersionName,
        roleSelections: ex.roleSelections,
      }),
    );
  });
}
