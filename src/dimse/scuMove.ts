/**
 * Study Root C-MOVE: the identifiers (SOP Instance UIDs split over several requests on one association), and the
 * sub-operation counts of every final response added up into one result.
 */
import dimse from 'dcmjs-dimse';
import {
  runAssociation,
  ScuAbortedError,
  type Operation,
  type QueryLevel,
  type ScuOptions,
  type ScuPeer,
} from './scuAssociation.js';
import { count, errorComment, toStringList, type MoveResponseLike } from './scuAnswers.js';
import { DicomStatus } from '../domain/status.js';
import { isFailure, isPending, isWarning } from '../domain/statusTable.js';

const { Dataset, requests } = dimse;

export interface MoveOptions extends ScuOptions {
  /** Most SOP Instance UIDs per C-MOVE identifier at IMAGE level (default MOVE_UIDS_PER_REQUEST). */
  maxUidsPerRequest?: number;
}

export interface MoveIds {
  studyInstanceUid: string;
  /** Required at SERIES level; at IMAGE level strongly advised (a strict hierarchical SCP such as dcmqrscp needs it). */
  seriesInstanceUid?: string;
  /** Required at IMAGE level. More than MOVE_UIDS_PER_REQUEST are split over several C-MOVE requests (one association). */
  sopInstanceUids?: string[];
}

export interface MoveResult {
  /** The final status (the first failure, else the first warning, else Success when split over several requests). */
  status: number;
  completed: number;
  failed: number;
  warning: number;
  remaining: number;
  /** Error Comment of the final response, if any. */
  comment?: string;
  /** Failed SOP Instance UID List (0008,0058) of the final response(s), if the peer sent it. */
  failedSopInstanceUids?: string[];
}

/** Most SOP Instance UIDs per C-MOVE identifier (an explicit VR UI element holds at most 65534 bytes). */
export const MOVE_UIDS_PER_REQUEST = 500;

/**
 * Study Root C-MOVE to `destinationAe` (which the peer must know by AE title). The identifier always carries
 * StudyInstanceUID; SERIES adds SeriesInstanceUID; IMAGE adds SeriesInstanceUID (if given) and the SOP Instance UIDs
 * (multi-valued). A failure final status (e.g. 0xA801 move destination unknown) is returned, not thrown; connection
 * problems and the deadline throw.
 */
export async function cMove(
  peer: ScuPeer,
  callingAe: string,
  destinationAe: string,
  level: QueryLevel,
  ids: MoveIds,
  opts: MoveOptions,
): Promise<MoveResult> {
  if (!ids.studyInstanceUid) throw new TypeError('cMove: studyInstanceUid is required');
  if (level === 'SERIES' && !ids.seriesInstanceUid)
    throw new TypeError('cMove: seriesInstanceUid is required at SERIES level');
  if (level === 'IMAGE' && !ids.sopInstanceUids?.length)
    throw new TypeError('cMove: sopInstanceUids are required at IMAGE level');

  const identifiers: Array<Record<string, unknown>> = [];
  const base: Record<string, unknown> = { QueryRetrieveLevel: level, StudyInstanceUID: ids.studyInstanceUid };
  if (level !== 'STUDY' && ids.seriesInstanceUid) base.SeriesInstanceUID = ids.seriesInstanceUid;
  if (level === 'IMAGE') {
    const uids = ids.sopInstanceUids ?? [];
    const per = Math.max(1, opts.maxUidsPerRequest ?? MOVE_UIDS_PER_REQUEST);
    for (let i = 0; i < uids.length; i += per) {
      const chunk = uids.slice(i, i + per);
      identifiers.push({ ...base, SOPInstanceUID: chunk.length === 1 ? chunk[0] : chunk });
    }
  } else {
    identifiers.push(base);
  }

  const finals: Array<MoveResult | undefined> = identifiers.map(() => undefined);
  const lastPending: Array<MoveResult | undefined> = identifiers.map(() => undefined);
  const ops = identifiers.map((identifier, i): Operation => {
    const request = new requests.CMoveRequest();
    request.setDataset(new Dataset(identifier));
    request.getCommandDataset().setElement('MoveDestination', destinationAe);
    return {
      request,
      onResponse(rsp) {
        const r = rsp as MoveResponseLike;
        const counts: MoveResult = {
          status: r.getStatus(),
          completed: count(r.getCompleted()),
          failed: count(r.getFailures()),
          warning: count(r.getWarnings()),
          remaining: count(r.getRemaining()),
          comment: errorComment(r),
        };
        if (isPending(counts.status, 'C-MOVE')) {
          lastPending[i] = counts;
          return false;
        }
        // A final Success or B000 means every sub-operation is done: Orthanc 1.10 still reports the last Pending's
        // Remaining (e.g. 1) there; report 0.
        if (counts.status === DicomStatus.Success || counts.status === DicomStatus.SubOperationsWarning)
          counts.remaining = 0;
        const failedUids = toStringList(r.getDataset()?.getElements().FailedSOPInstanceUIDList);
        if (failedUids.length) counts.failedSopInstanceUids = failedUids;
        finals[i] = counts;
        return true;
      },
    };
  });
  await runAssociation(peer, callingAe, opts, 'C-MOVE', ops);
  if (finals.some((f) => !f)) throw new ScuAbortedError(peer, 'no final C-MOVE response');
  return aggregateMoves(finals as MoveResult[], lastPending);
}

function aggregateMoves(finals: MoveResult[], lastPending: Array<MoveResult | undefined>): MoveResult {
  const out: MoveResult = { status: DicomStatus.Success, completed: 0, failed: 0, warning: 0, remaining: 0 };
  const failure = finals.find((f) => isFailure(f.status, 'C-MOVE'));
  const warning = finals.find((f) => isWarning(f.status, 'C-MOVE'));
  const pick = failure ?? warning;
  if (pick) {
    out.status = pick.status;
    if (pick.comment) out.comment = pick.comment;
  }
  finals.forEach((f, i) => {
    // Some SCPs leave the counts out of the final response (PS3.4 C.4.2.1.5 makes them optional there when the
    // status is a failure); fall back to the last Pending one for what is still unknown.
    const p = lastPending[i];
    out.completed += f.completed || p?.completed || 0;
    out.failed += f.failed;
    out.warning += f.warning || p?.warning || 0;
    out.remaining += f.remaining;
    if (f.failedSopInstanceUids) (out.failedSopInstanceUids ??= []).push(...f.failedSopInstanceUids);
  });
  return out;
}
