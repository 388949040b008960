/**
 * What an incoming PDU is, judged from its 6-byte header before any of its body is kept (its event in the state
 * table, or why it is invalid), and what a body read whole decodes to. Pure.
 */
import type { Action, Event } from './fsm.js';
import {
  AbortReason,
  FIXED_PDU_LENGTH,
  MAX_ASSOCIATION_PDU,
  PduError,
  PduType,
  decodeAbort,
  decodeReject,
  type AbortPdu,
  type RejectPdu,
} from './pdu.js';
import { decodeAssociateAc, decodeAssociateRq, type AssociateAc, type AssociateRq } from './associatePdu.js';

export const PDU_EVENTS: Readonly<Record<number, Event>> = {
  [PduType.AssociateRq]: 'Evt6',
  [PduType.AssociateAc]: 'Evt3',
  [PduType.AssociateRj]: 'Evt4',
  [PduType.PDataTf]: 'Evt10',
  [PduType.ReleaseRq]: 'Evt12',
  [PduType.ReleaseRp]: 'Evt13',
  [PduType.Abort]: 'Evt16',
};

export const PDU_NAMES: Readonly<Partial<Record<Event, string>>> = {
  Evt3: 'A-ASSOCIATE-AC',
  Evt4: 'A-ASSOCIATE-RJ',
  Evt6: 'A-ASSOCIATE-RQ',
  Evt10: 'P-DATA-TF',
  Evt12: 'A-RELEASE-RQ',
  Evt13: 'A-RELEASE-RP',
  Evt16: 'A-ABORT',
};

/** Actions that need the PDU's body; every other answer is given from the header and the body is skipped. */
export const NEEDS_BODY: ReadonlySet<Action> = new Set(['AE-3', 'AE-4', 'AE-6', 'DT-2', 'AR-6', 'AA-3']);

/**
 * The event of a PDU header, or Evt19 with the reason: an unknown type, an empty P-DATA-TF or one above what we
 * announced (`maxReceive`, 0 before there is an association), an association PDU above 64 KiB, a fixed-size PDU of
 * another size.
 */
export function judgeHeader(type: number, length: number, maxReceive: number): { event: Event; error?: PduError } {
  const event = PDU_EVENTS[type];
  const invalid = (msg: string) => ({
    event: 'Evt19' as const,
    error: new PduError(AbortReason.InvalidPduParameter, msg),
  });
  if (!event) {
    return {
      event: 'Evt19',
      error: new PduError(AbortReason.UnrecognizedPdu, `unknown PDU type 0x${type.toString(16)}`),
    };
  }
  if (type === PduType.PDataTf) {
    if (length === 0) return invalid('an empty P-DATA-TF');
    if (maxReceive > 0 && length > maxReceive) return invalid(`a P-DATA-TF of ${length} bytes (max ${maxReceive})`);
  } else if (type === PduType.AssociateRq || type === PduType.AssociateAc) {
    if (length > MAX_ASSOCIATION_PDU)
      return invalid(`an association PDU of ${length} bytes (max ${MAX_ASSOCIATION_PDU})`);
  } else if (length !== FIXED_PDU_LENGTH) {
    return invalid(`${PDU_NAMES[event] ?? 'PDU'} of ${length} bytes (must be ${FIXED_PDU_LENGTH})`);
  }
  return { event };
}

export interface Received {
  rq?: AssociateRq;
  ac?: AssociateAc;
  rj?: RejectPdu;
  abort?: AbortPdu;
}

/** The body of a PDU read whole; throws PduError when it cannot be parsed. */
export function decodeBody(type: number, body: Buffer): Received {
  if (type === PduType.AssociateRq) return { rq: decodeAssociateRq(body) };
  if (type === PduType.AssociateAc) return { ac: decodeAssociateAc(body) };
  if (type === PduType.AssociateRj) return { rj: decodeReject(body) };
  return { abort: decodeAbort(body) };
}
