/**
 * PS3.8 section 9.3: PDU types, limits and the codec of the fixed-size PDUs (A-ASSOCIATE-RJ, A-RELEASE-RQ / -RP,
 * A-ABORT) and of P-DATA-TF. Role-agnostic (acceptor and requestor) and pure: no I/O.
 *
 * The numeric codes of aborts and rejections are dcmjs-dimse's constants (they are PS3.8's). Its PDU classes are not
 * used: they live inside its own association handling, and this layer checks every length before it allocates.
 */
import dimse from 'dcmjs-dimse';

const { AbortSource, AbortReason, RejectResult, RejectSource, RejectReason } = dimse.constants;
export { AbortSource, AbortReason, RejectResult, RejectSource, RejectReason };

export const PduType = {
  AssociateRq: 0x01,
  AssociateAc: 0x02,
  AssociateRj: 0x03,
  PDataTf: 0x04,
  ReleaseRq: 0x05,
  ReleaseRp: 0x06,
  Abort: 0x07,
} as const;

/** The largest A-ASSOCIATE-RQ / -AC we read (PS3.8 sets none; 128 contexts with 16 syntaxes each fit in ~40 KiB). */
export const MAX_ASSOCIATION_PDU = 64 * 1024;
/** A-ASSOCIATE-RJ, A-RELEASE-RQ / -RP and A-ABORT have a 4-byte variable field, nothing else. */
export const FIXED_PDU_LENGTH = 4;
/** PDU header: type, reserved, 4-byte length. */
export const PDU_HEADER = 6;
/** PDV item header: 4-byte length, presentation context ID, message control header. */
export const PDV_HEADER = 6;

/** Message control header bits (PS3.8 annex E.2). */
export const PDV_COMMAND = 0x01;
export const PDV_LAST = 0x02;

/** A PDU that cannot be parsed: the A-ABORT reason (PS3.8 9.3.8) goes with it. */
export class PduError extends Error {
  constructor(
    readonly reason: number,
    message: string,
  ) {
    super(message);
    this.name = 'PduError';
  }
}

export interface AbortPdu {
  source: number;
  reason: number;
}

export interface RejectPdu {
  result: number;
  source: number;
  reason: number;
}

function fixedPdu(type: number, b2: number, b3: number): Buffer {
  const out = Buffer.alloc(PDU_HEADER + FIXED_PDU_LENGTH);
  out[0] = type;
  out.writeUInt32BE(FIXED_PDU_LENGTH, 2);
  out[8] = b2;
  out[9] = b3;
  return out;
}

export function encodeAbort(a: AbortPdu): Buffer {
  return fixedPdu(PduType.Abort, a.source, a.reason);
}

export function encodeReject(r: RejectPdu): Buffer {
  const out = fixedPdu(PduType.AssociateRj, r.source, r.reason);
  out[7] = r.result;
  return out;
}

export function encodeReleaseRq(): Buffer {
  return fixedPdu(PduType.ReleaseRq, 0, 0);
}

export function encodeReleaseRp(): Buffer {
  return fixedPdu(PduType.ReleaseRp, 0, 0);
}

/** The variable field of an A-ABORT (reserved, reserved, source, reason). Reserved bytes are not tested. */
export function decodeAbort(body: Buffer): AbortPdu {
  return { source: body[2] ?? 0, reason: body[3] ?? 0 };
}

/** The variable field of an A-ASSOCIATE-RJ (reserved, result, source, reason). */
export function decodeReject(body: Buffer): RejectPdu {
  return { result: body[1] ?? 0, source: body[2] ?? 0, reason: body[3] ?? 0 };
}

/** One P-DATA-TF holding a single PDV (the usual shape of a command set, or of one data set fragment). */
export function pdataPdu(presentationContextId: number, control: number, value: Buffer): Buffer {
  const pdu = Buffer.alloc(PDU_HEADER + PDV_HEADER + value.length);
  pdu[0] = PduType.PDataTf;
  pdu.writeUInt32BE(PDV_HEADER + value.length, 2);
  pdu.writeUInt32BE(2 + value.length, 6);
  pdu[10] = presentationContextId;
  pdu[11] = control;
  value.copy(pdu, 12);
  return pdu;
}

/**
 * A command set or data set cut into P-DATA-TF PDUs of at most `maxPduLength` (the peer's Maximum Length; 0 means
 * no limit), one PDV each, the last one flagged.
 */
export function pdataPdus(
  presentationContextId: number,
  command: boolean,
  value: Buffer,
  maxPduLength: number,
): Buffer[] {
  const room = maxPduLength > 0 ? maxPduLength - PDV_HEADER : value.length;
  if (room < 1) throw new RangeError(`maximum PDU length ${maxPduLength} leaves no room for data`);
  const out: Buffer[] = [];
  let at = 0;
  do {
    const piece = value.subarray(at, at + room);
    at += piece.length;
    const control = (command ? PDV_COMMAND : 0) | (at >= value.length ? PDV_LAST : 0);
    out.push(pdataPdu(presentationContextId, control, piece));
  } while (at < value.length);
  return out;
}
