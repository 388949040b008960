/**
 * Asks a destination for Storage Commitment of instances we sent it (PS3.4 J.3.2, we are the SCU): one association,
 * the N-ACTION-RQ (Request Storage Commitment, with its Transaction UID and Referenced SOP Sequence), its N-ACTION-RSP,
 * then a short wait for the N-EVENT-REPORT-RQ in case the destination reports on the same association (answered
 * Success here). A destination that reports on a new association instead reaches the SCP side (services.ts).
 */
import { STORAGE_COMMITMENT_SOP_CLASS, STORAGE_COMMITMENT_SOP_INSTANCE } from './nAction.js';
import { runExchange, type RequestorOptions, type RequestorPeer } from './requestorSession.js';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';

export interface CommitmentAsked {
  /** The N-ACTION-RSP status. */
  actionStatus: number;
  /** The report, when the destination sent it on this association within the wait. */
  report?: { eventTypeId: number; dataset: Record<string, unknown> };
}

export interface CommitOptions extends RequestorOptions {
  /** How long to keep the association open for a report on it after the N-ACTION-RSP (default 5 s). */
  reportWaitMs?: number;
}

export function requestCommitment(
  peer: RequestorPeer,
  transactionUid: string,
  refs: ReadonlyArray<{ sopClassUid: string; sopInstanceUid: string }>,
  opts: CommitOptions,
): Promise<CommitmentAsked> {
  let actionStatus: number | undefined;
  let report: CommitmentAsked['report'];
  let wait: NodeJS.Timeout | undefined;
  return runExchange(peer, opts, {
    contexts: [{ id: 1, abstractSyntax: STORAGE_COMMITMENT_SOP_CLASS, transferSyntaxes: [EXPLICIT_LE, IMPLICIT_LE] }],
    start: (session) => {
      if (!session.accepted(1)) return session.fail('the storage commitment context was not accepted');
      session.send(
        1,
        {
          CommandField: 0x0130,
          MessageID: 1,
          RequestedSOPClassUID: STORAGE_COMMITMENT_SOP_CLASS,
          RequestedSOPInstanceUID: STORAGE_COMMITMENT_SOP_INSTANCE,
          ActionTypeID: 1,
        },
        {
          TransactionUID: transactionUid,
          ReferencedSOPSequence: refs.map((r) => ({
            ReferencedSOPClassUID: r.sopClassUid,
            ReferencedSOPInstanceUID: r.sopInstanceUid,
          })),
        },
      );
    },
    message: (session, pc, c, received) => {
      if (c.CommandField === 0x8130 && c.MessageIDBeingRespondedTo === 1 && typeof c.Status === 'number') {
        actionStatus = c.Status;
        if (c.Status !== 0) return session.release();
        wait = setTimeout(() => session.release(), opts.reportWaitMs ?? 5000);
        return;
      }
      if (c.CommandField === 0x0100 && actionStatus !== undefined) {
        const ok = received?.ok === true;
        const eventTypeId = typeof c.EventTypeID === 'number' ? c.EventTypeID : 0;
        if (ok) report = { eventTypeId, dataset: received.dataset };
        const rsp: Record<string, string | number> = {
          CommandField: 0x8100,
          MessageIDBeingRespondedTo: typeof c.MessageID === 'number' ? c.MessageID : 0,
          Status: ok ? 0 : 0x0110,
          AffectedSOPClassUID: STORAGE_COMMITMENT_SOP_CLASS,
          AffectedSOPInstanceUID: STORAGE_COMMITMENT_SOP_INSTANCE,
          EventTypeID: eventTypeId,
        };
        session.send(pc, rsp);
        clearTimeout(wait);
        return session.release();
      }
      session.fail(`unexpected command 0x${Number(c.CommandField).toString(16)}`);
    },
    closed: (failure) => {
      clearTimeout(wait);
      if (actionStatus === undefined) throw new Error(failure ?? 'closed without an N-ACTION-RSP');
      return { actionStatus, ...(report ? { report } : {}) };
    },
  });
}
