/**
 * Sends one storage commitment N-EVENT-REPORT-RQ on a new association to the requester (PS3.4 J.3.3). We are the
 * Storage Commitment SCP but the invoker of N-EVENT-REPORT, so SCP/SCU Role Selection is proposed with SCU role 0 and
 * SCP role 1 (PS3.7 D.3.3.4). Resolves with the peer's status; rejects when the association cannot be made or ends
 * before the answer.
 */
import { STORAGE_COMMITMENT_SOP_CLASS, eventReportCommand } from './nAction.js';
import { runExchange, type RequestorOptions, type RequestorPeer } from './requestorSession.js';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';

export type ReportPeer = RequestorPeer;
export type ReportOptions = RequestorOptions;

export function sendEventReport(
  peer: ReportPeer,
  eventTypeId: 1 | 2,
  dataset: Record<string, unknown>,
  opts: ReportOptions,
): Promise<number> {
  let status: number | undefined;
  return runExchange(peer, opts, {
    contexts: [{ id: 1, abstractSyntax: STORAGE_COMMITMENT_SOP_CLASS, transferSyntaxes: [EXPLICIT_LE, IMPLICIT_LE] }],
    roleSelections: [{ sopClassUid: STORAGE_COMMITMENT_SOP_CLASS, scu: false, scp: true }],
    start: (session) => {
      if (!session.accepted(1)) return session.fail('the storage commitment context was not accepted');
      session.send(1, eventReportCommand(1, eventTypeId), dataset);
    },
    message: (session, _pc, c) => {
      if (c.CommandField === 0x8100 && c.MessageIDBeingRespondedTo === 1 && typeof c.Status === 'number') {
        status = c.Status;
        session.release();
      } else session.fail(`unexpected command 0x${Number(c.CommandField).toString(16)}`);
    },
    closed: (failure) => {
      if (status !== undefined) return status;
      throw new Error(failure ?? 'closed without an N-EVENT-REPORT-RSP');
    },
  });
}
