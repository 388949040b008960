/**
 * Named DIMSE status codes scannode answers with or acts on (PS3.4 Annex B and PS3.7 Annex C). dcmjs-dimse's `Status` lacks the
 * storage-specific ones, so they live here.
 */
export const DicomStatus = {
  Success: 0x0000,
  /** Refused: out of resources (disk full, quota). */
  OutOfResources: 0xa700,
  /** Error: data set does not match SOP class (e.g. SOP Instance UID in the data differs from the command). */
  DataSetDoesNotMatchSopClass: 0xa900,
  /** Error: cannot understand (not DICOM, cannot be parsed). */
  CannotUnderstand: 0xc000,
  /** Error: the data set ended before its last element (truncated). */
  Truncated: 0xc001,
  /** Error: a UID in the data or command violates the UID grammar. */
  InvalidUid: 0xc002,
  /** Refused: same SOP Instance UID as a stored instance but different content (dicom.onConflict = refuse). */
  ConflictingDuplicate: 0xc003,
  /** Failure: processing failure (an unexpected error inside scannode). */
  ProcessingFailure: 0x0110,
  NoSuchSopClass: 0x0118,
  DuplicateSopInstance: 0x0111,
  NoSuchObjectInstance: 0x0112,
  InvalidAttributeValue: 0x0106,
  MissingAttribute: 0x0120,
  /** Refused: the command's SOP class is not the abstract syntax of its presentation context (PS3.7 C.4.2). */
  SopClassNotSupported: 0x0122,
  /** Refused: a DIMSE operation this node does not perform. */
  UnrecognizedOperation: 0x0211,
  /** Query/Retrieve (PS3.4 C.4): a match or sub-operation progress follows. */
  Pending: 0xff00,
  /** C-FIND: pending, optional keys not supported. */
  PendingWarning: 0xff01,
  Cancel: 0xfe00,
  /** C-MOVE: refused, move destination unknown. */
  MoveDestinationUnknown: 0xa801,
  /** C-MOVE: warning, sub-operations complete with one or more failures or warnings. */
  SubOperationsWarning: 0xb000,
} as const;

export type DicomStatusCode = (typeof DicomStatus)[keyof typeof DicomStatus];

export function hex(status: number): string {
  return `0x${status.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** A failure that maps to one DIMSE status; anything else thrown inside a handler becomes ProcessingFailure. */
export class DimseError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
