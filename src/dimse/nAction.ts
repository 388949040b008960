/**
 * Storage Commitment Push Model (PS3.4 J) on the wire: its UIDs and the N-EVENT-REPORT-RQ command (PS3.7 10.1.1) of a
 * result, for whoever sends it (the same association, or a new one). The N-ACTION service itself is in services.ts.
 */
import type { CommandSet } from './dimseMessages.js';

export const STORAGE_COMMITMENT_SOP_CLASS = '1.2.840.10008.1.20.1';
export const STORAGE_COMMITMENT_SOP_INSTANCE = '1.2.840.10008.1.20.1.1';

/** The N-EVENT-REPORT-RQ command set of a storage commitment result (Event Type 1 all committed, 2 some failed). */
export function eventReportCommand(messageId: number, eventTypeId: 1 | 2): CommandSet {
  return {
    CommandField: 0x0100,
    MessageID: messageId,
    AffectedSOPClassUID: STORAGE_COMMITMENT_SOP_CLASS,
    AffectedSOPInstanceUID: STORAGE_COMMITMENT_SOP_INSTANCE,
    EventTypeID: eventTypeId,
  };
}
