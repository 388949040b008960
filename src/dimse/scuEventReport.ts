/**
 * Sends one storage commitment N-EVENT-REPORT-RQ on a new association to the requester (PS3.4 J.3.3), over the
 * edge's own upper layer in the requestor role. We are the Storage Commitment SCP but the invoker of N-EVENT-REPORT,
 * so SCP/SCU Role Selection is proposed with SCU role 0 and SCP role 1 (PS3.7 D.3.3.4). Resolves with the peer's
 * status; rejects when the association cannot be made or ends before the answer.
 */
import dimse from 'dcmjs-dimse';
import { realClock } from './clock.js';
import { MessageAssembler, encodeMessage } from './dimseMessages.js';
import { STORAGE_COMMITMENT_SOP_CLASS, eventReportCommand } from './nAction.js';
import { UpperLayer } from './upperLayer.js';
import { rejectText } from './rejectTable.js';
import { requestorAssociateRq, requestorTransport } from './requestorTransport.js';
import type { TlsClientFiles } from './tls.js';
import type { Logger } from '../logging/logger.js';

const { Dataset } = dimse;
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';

export interface ReportPeer {
  aeTitle: string;
  host: string;
  port: number;
  /** Present: the report's association runs over DICOM TLS. */
  tls?: TlsClientFiles;
}

export interface ReportOptions {
  callingAe: string;
  implementationClassUid: string;
  implementationVersionName?: string;
  log: Logger;
  timeoutMs?: number;
}

export function sendEventReport(
  peer: ReportPeer,
  eventTypeId: 1 | 2,
  dataset: Record<string, unknown>,
  opts: ReportOptions,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let status: number | undefined;
    let failure: string | undefined;
    const assembler = new MessageAssembler({
      command: (_pc, c) => {
        if (c.CommandField === 0x8100 && c.MessageIDBeingRespondedTo === 1 && typeof c.Status === 'number') {
          status = c.Status;
          ul.release();
        } else {
          failure = `unexpected command 0x${Number(c.CommandField).toString(16)}`;
          ul.abort(failure);
        }
        return undefined;
      },
      invalid: (_r, detail) => ul.abort(detail),
      unreadable: (detail) => ul.abort(detail),
    });
    const rq = requestorAssociateRq({
      calledAe: peer.aeTitle,
      callingAe: opts.callingAe,
      presentationContexts: [
        { id: 1, abstractSyntax: STORAGE_COMMITMENT_SOP_CLASS, transferSyntaxes: [EXPLICIT_LE, IMPLICIT_LE] },
      ],
      implementationClassUid: opts.implementationClassUid,
      implementationVersionName: opts.implementationVersionName,
      roleSelections: [{ sopClassUid: STORAGE_COMMITMENT_SOP_CLASS, scu: false, scp: true }],
    });
    const timer = setTimeout(() => {
      failure = 'timed out';
      ul.abort('timed out waiting for the N-EVENT-REPORT-RSP');
    }, opts.timeoutMs ?? 30_000);
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
            failure = `association rejected: ${rejectText(a.rj.result, a.rj.source, a.rj.reason)}`;
            return;
          }
          const pc = a.ac.presentationContexts.find((p) => p.id === 1);
          if (!pc || pc.result !== 0) {
            failure = 'the storage commitment context was not accepted';
            return ul.abort(failure);
          }
          let bytes: Buffer;
          try {
            bytes = new Dataset(dataset, pc.transferSyntax).getDenaturalizedDataset();
          } catch (err) {
            failure = `cannot encode the report: ${String(err)}`;
            return ul.abort(failure);
          }
          ul.send(encodeMessage(1, eventReportCommand(1, eventTypeId), bytes, ul.peerMaxPdu)!);
        },
        pdv: (pc, control, piece, end) => assembler.pdv(pc, control, piece, end),
        releaseIndication: () => ul.releaseResponse(),
        releaseConfirmation: () => undefined,
        abortIndication: (info) => (failure ??= `aborted: ${info.detail}`),
        closed: () => {
          clearTimeout(timer);
          if (status !== undefined) resolve(status);
          else reject(new Error(failure ?? 'closed without an N-EVENT-REPORT-RSP'));
        },
      },
      {
        role: 'requestor',
        clock: realClock,
        artimMs: 10_000,
        idleMs: 60_000,
        log: opts.log,
        logMeta: { peer: `${peer.aeTitle}@${peer.host}:${peer.port}` },
      },
    );
    ul.associate(rq);
  });
}
