/**
 * Owns the A-ASSOCIATE-RJ table of PS3.8 9.3.4 (Table 9-21), in both directions: the result/source/reason scannode
 * sends for each typed rejection kind, and the words for any result/source/reason a peer sends us.
 */
import { RejectReason, RejectResult, RejectSource, type RejectPdu } from './pdu.js';

export type RejectionKind =
  | 'called-ae-not-recognized'
  | 'calling-ae-not-recognized'
  | 'local-limit-exceeded'
  | 'protocol-version-not-supported'
  | 'application-context-not-supported'
  | 'invalid-request';

interface Row {
  source: number;
  reason: number;
  text: string;
  /** Where scannode itself rejects for this reason: the kind, and the result it sends. */
  ours?: { kind: RejectionKind; result: number };
}

const P = RejectResult.Permanent;
const T = RejectResult.Transient;
const U = RejectSource.ServiceUser;
const ACSE = RejectSource.ServiceProviderAcse;
const PRES = RejectSource.ServiceProviderPresentation;

const ROWS: Row[] = [
  {
    source: U,
    reason: RejectReason.NoReasonGiven,
    text: 'no reason given',
    ours: { kind: 'invalid-request', result: P },
  },
  {
    source: U,
    reason: RejectReason.ApplicationContextNotSupported,
    text: 'application context name not supported',
    ours: { kind: 'application-context-not-supported', result: P },
  },
  {
    source: U,
    reason: RejectReason.CallingAeNotRecognized,
    text: 'calling AE title not recognized',
    ours: { kind: 'calling-ae-not-recognized', result: P },
  },
  {
    source: U,
    reason: RejectReason.CalledAeNotRecognized,
    text: 'called AE title not recognized',
    ours: { kind: 'called-ae-not-recognized', result: P },
  },
  { source: ACSE, reason: RejectReason.NoReasonGiven, text: 'no reason given' },
  {
    source: ACSE,
    reason: RejectReason.ProtocolVersionNotSupported,
    text: 'protocol version not supported',
    ours: { kind: 'protocol-version-not-supported', result: P },
  },
  { source: PRES, reason: RejectReason.TemporaryCongestion, text: 'temporary congestion' },
  {
    source: PRES,
    reason: RejectReason.LocalLimitExceeded,
    text: 'local limit exceeded',
    ours: { kind: 'local-limit-exceeded', result: T },
  },
];

/** The A-ASSOCIATE-RJ codes scannode sends for a rejection of this kind. */
export function rejectionCodes(r: { kind: RejectionKind }): RejectPdu {
  const row = ROWS.find((x) => x.ours?.kind === r.kind)!;
  return { result: row.ours!.result, source: row.source, reason: row.reason };
}

/** A peer's A-ASSOCIATE-RJ in words, e.g. "transient, local limit exceeded". */
export function rejectText(result: number, source: number, reason: number): string {
  const kind = result === P ? 'permanent' : result === T ? 'transient' : `result ${result}`;
  const row = ROWS.find((x) => x.source === source && x.reason === reason);
  return `${kind}, ${row?.text ?? 'unknown reason'}`;
}
