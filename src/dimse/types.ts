/** What the protocol edge tells the layers above, and what it asks of them. No database or file layout here. */
import type { RejectionKind } from './policy.js';

export type { RejectionKind };

export interface AssociationInfo {
  id: string;
  callingAe: string;
  calledAe: string;
  remoteAddress: string;
  remotePort: number;
}

export interface StoreRequestInfo {
  association: AssociationInfo;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  moveOriginatorAe?: string;
}

export interface DimseResult {
  status: number;
  comment?: string;
  /** Work that goes on after the answer (a store's index row): the association's release waits for it. */
  after?: Promise<unknown>;
}

/**
 * Receives one C-STORE data set as it streams off the socket. `write` is called synchronously in PDU order and must
 * not block for long; `finish` resolves with the status to answer once the data is durable (work that follows, such
 * as its index row, in `DimseResult.after`); `abort` is called instead of `finish` when the association dies
 * mid-transfer.
 */
export interface StoreSink {
  write(chunk: Buffer): void;
  finish(): Promise<DimseResult>;
  abort(reason: string): void;
}

export interface NRequest {
  association: AssociationInfo;
  sopClassUid: string;
  sopInstanceUid: string | undefined;
  /** The data set as naturalized dcmjs JSON. */
  dataset: Record<string, unknown> | undefined;
}

export interface NResponse extends DimseResult {
  /** Affected SOP Instance UID to return (N-CREATE may assign one). */
  sopInstanceUid?: string;
  dataset?: Record<string, unknown>;
}

/** N-ACTION-RQ of the Storage Commitment Push Model (nAction.ts). */
export interface NActionRequest extends NRequest {
  actionTypeId: number;
  dataset: Record<string, unknown>;
  /**
   * Sends an N-EVENT-REPORT-RQ on the requester's association while it is open: resolves with the peer's status, or
   * undefined when the association is gone (or ends before the answer).
   */
  reportOnSameAssociation(eventTypeId: 1 | 2, dataset: Record<string, unknown>): Promise<number | undefined>;
}

/** N-EVENT-REPORT-RQ of the Storage Commitment Push Model: the result of a request we sent (PS3.4 J.3.3). */
export interface NEventReportRequest extends NRequest {
  eventTypeId: 1 | 2;
  dataset: Record<string, unknown>;
}

export interface AssociationSummary extends AssociationInfo {
  startedAt: Date;
  endedAt: Date;
  accepted: boolean;
  /** Why the association was rejected, in words (names the AE titles and counts involved). */
  rejectReason?: string;
  /** The kind of that rejection, typed (metrics label it without parsing the words). */
  rejection?: RejectionKind;
  instancesReceived: number;
  bytesReceived: number;
  failures: number;
  aborted: boolean;
  /** Why it was aborted, when it was (A-ABORT from the peer, a protocol error, the idle timer...). */
  abortDetail?: string;
}

export interface DimseHandlers {
  openStore(request: StoreRequestInfo): StoreSink;
  nCreate?(request: NRequest): Promise<NResponse>;
  nSet?(request: NRequest): Promise<NResponse>;
  /** Storage Commitment Push Model N-ACTION: answered at once; the report goes out later (reportOnSameAssociation). */
  nAction?(request: NActionRequest): Promise<NResponse>;
  /** A storage commitment result for a request we sent (forwarding), on its association or a new one. */
  nEventReport?(request: NEventReportRequest): Promise<NResponse>;
  associationClosed?(summary: AssociationSummary): void;
  /**
   * A C-STORE was answered: its status, the data set bytes received and the time from the first data byte to the
   * response. Called synchronously right after the response is handed to the library; an exception is logged only.
   */
  storeCompleted?(e: StoreCompletedEvent): void;
}

export interface StoreCompletedEvent {
  association: AssociationInfo;
  status: number;
  bytes: number;
  durationMs: number;
}
