/**
 * Modality Performed Procedure Step (PS3.4 Annex F), the part that needs no I/O: which N-CREATE / N-SET may be
 * accepted, how an N-SET changes the step, and what a step tells us about its study and its expected instances.
 * Data sets are naturalized dcmjs JSON, as the DIMSE edge hands them over.
 */
import { DicomStatus, DimseError } from './status.js';
import { cleanUid, isValidUid } from './uid.js';

export const MPPS_SOP_CLASS_UID = '1.2.840.10008.3.1.2.3.3';

export const MPPS_STATUSES = ['IN PROGRESS', 'COMPLETED', 'DISCONTINUED'] as const;
export type MppsStatus = (typeof MPPS_STATUSES)[number];

/** PS3.7 C.4: the Affected SOP Instance UID is not a valid UID. status.ts has no constant for it. */
export const INVALID_OBJECT_INSTANCE = 0x0117;

export type MppsDataset = Record<string, unknown>;

export function isFinal(status: MppsStatus): boolean {
  return status === 'COMPLETED' || status === 'DISCONTINUED';
}

/** A single text value out of a naturalized attribute (string, number, multi-valued array or PN object). */
export function textOf(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) return value.length ? textOf(value[0]) : undefined;
  if (typeof value === 'object') {
    const alpha = (value as { Alphabetic?: unknown }).Alphabetic;
    return typeof alpha === 'string' && alpha.trim() ? alpha.trim() : undefined;
  }
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const s = String(value).replace(/\0+$/, '').trim();
  return s.length ? s : undefined;
}

function items(value: unknown): MppsDataset[] {
  if (!Array.isArray(value)) return [];
  return value.filter((v): v is MppsDataset => typeof v === 'object' && v !== null && !Array.isArray(v));
}

function statusOf(ds: MppsDataset | undefined): string | undefined {
  return ds ? textOf(ds.PerformedProcedureStepStatus)?.toUpperCase() : undefined;
}

/** N-CREATE: the step must start IN PROGRESS (F.7.2.1). Returns the SOP Instance UID to use, or throws. */
export function checkCreate(sopInstanceUid: string | undefined, ds: MppsDataset | undefined, newUid: () => string) {
  const uid = sopInstanceUid ?? newUid();
  if (!isValidUid(uid)) {
    throw new DimseError(INVALID_OBJECT_INSTANCE, `Affected SOP Instance UID ${JSON.stringify(uid)} is not a UID`);
  }
  const status = statusOf(ds);
  if (status === undefined) {
    throw new DimseError(
      DicomStatus.MissingAttribute,
      'PerformedProcedureStepStatus (0040,0252) missing; N-CREATE must be IN PROGRESS',
    );
  }
  if (status !== 'IN PROGRESS') {
    throw new DimseError(
      DicomStatus.InvalidAttributeValue,
      `PerformedProcedureStepStatus (0040,0252) is "${status}"; N-CREATE must be IN PROGRESS`,
    );
  }
  return uid;
}

/**
 * N-SET on a step in `current` state (undefined: no such step). Returns the state after the N-SET, or throws the
 * status PS3.4 F.7.2.2 prescribes.
 */
export function checkSet(current: MppsStatus | undefined, ds: MppsDataset | undefined): MppsStatus {
  if (current === undefined) throw new DimseError(DicomStatus.NoSuchObjectInstance, 'no such MPPS instance');
  if (isFinal(current)) {
    throw new DimseError(
      DicomStatus.ProcessingFailure,
      `Performed Procedure Step Object may no longer be updated (it is ${current})`,
    );
  }
  const requested = statusOf(ds);
  if (requested === undefined) return current;
  if (!(MPPS_STATUSES as readonly string[]).includes(requested)) {
    throw new DimseError(
      DicomStatus.InvalidAttributeValue,
      `PerformedProcedureStepStatus (0040,0252) "${requested}" is not IN PROGRESS, COMPLETED or DISCONTINUED`,
    );
  }
  return requested as MppsStatus;
}

/** N-SET replaces whole attributes (a sequence is replaced with all its items); the UIDs of the step never change. */
export function applySet(stored: MppsDataset, modification: MppsDataset | undefined): MppsDataset {
  const out: MppsDataset = { ...stored };
  for (const [key, value] of Object.entries(modification ?? {})) {
    if (key === '_vrMap' || key === 'SOPInstanceUID' || key === 'SOPClassUID') continue;
    out[key] = value;
  }
  return out;
}

/** DA and TM of a moment, in local time, as a scanner would write them. */
export function dicomDateTime(at: Date): { date: string; time: string } {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return {
    date: `${at.getFullYear()}${p(at.getMonth() + 1)}${p(at.getDate())}`,
    time: `${p(at.getHours())}${p(at.getMinutes())}${p(at.getSeconds())}`,
  };
}

/** A step that reaches COMPLETED / DISCONTINUED gets its end date and time; the scanner's own values win. */
export function withEndDateTime(ds: MppsDataset, status: MppsStatus, at: Date): MppsDataset {
  if (!isFinal(status)) return ds;
  const now = dicomDateTime(at);
  return {
    ...ds,
    PerformedProcedureStepEndDate: textOf(ds.PerformedProcedureStepEndDate) ?? now.date,
    PerformedProcedureStepEndTime: textOf(ds.PerformedProcedureStepEndTime) ?? now.time,
  };
}

export interface MppsSummary {
  status: MppsStatus;
  /** Valid StudyInstanceUIDs of the Scheduled Step Attributes Sequence, first one first. */
  studyInstanceUids: string[];
  accessionNumber: string | undefined;
  patientId: string | undefined;
  patientName: string | undefined;
  startDate: string | undefined;
  startTime: string | undefined;
  endDate: string | undefined;
  endTime: string | undefined;
}

export function summarize(ds: MppsDataset, status: MppsStatus): MppsSummary {
  const scheduled = items(ds.ScheduledStepAttributesSequence);
  const studies: string[] = [];
  for (const item of scheduled) {
    const uid = cleanUid(textOf(item.StudyInstanceUID));
    if (isValidUid(uid) && !studies.includes(uid)) studies.push(uid);
  }
  const accession = scheduled.map((i) => textOf(i.AccessionNumber)).find((a) => a !== undefined);
  return {
    status,
    studyInstanceUids: studies,
    accessionNumber: accession,
    patientId: textOf(ds.PatientID),
    patientName: textOf(ds.PatientName),
    startDate: textOf(ds.PerformedProcedureStepStartDate),
    startTime: textOf(ds.PerformedProcedureStepStartTime),
    endDate: textOf(ds.PerformedProcedureStepEndDate),
    endTime: textOf(ds.PerformedProcedureStepEndTime),
  };
}

export interface ExpectedInstance {
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string | undefined;
}

export interface ExpectedSeries {
  seriesInstanceUid: string;
  seriesDescription: string | undefined;
  instances: ExpectedInstance[];
}

/**
 * The Performed Series Sequence: per series, the SOP Instance UIDs of its Referenced Image Sequence and Referenced
 * Non-Image Composite SOP Instance Sequence. Items whose UIDs break the grammar are counted in `skipped`, not used.
 */
export function expectedInstances(ds: MppsDataset): { series: ExpectedSeries[]; skipped: number } {
  const bySeries = new Map<string, ExpectedSeries>();
  const seenSop = new Set<string>();
  let skipped = 0;
  for (const item of items(ds.PerformedSeriesSequence)) {
    const seriesUid = cleanUid(textOf(item.SeriesInstanceUID));
    const refs = [
      ...items(item.ReferencedImageSequence),
      ...items(item.ReferencedNonImageCompositeSOPInstanceSequence),
    ];
    if (!isValidUid(seriesUid)) {
      skipped += Math.max(1, refs.length);
      continue;
    }
    let series = bySeries.get(seriesUid);
    if (!series) {
      series = { seriesInstanceUid: seriesUid, seriesDescription: textOf(item.SeriesDescription), instances: [] };
      bySeries.set(seriesUid, series);
    }
    for (const ref of refs) {
      const sop = cleanUid(textOf(ref.ReferencedSOPInstanceUID));
      if (!isValidUid(sop)) {
        skipped++;
        continue;
      }
      if (seenSop.has(sop)) continue;
      seenSop.add(sop);
      const sopClass = cleanUid(textOf(ref.ReferencedSOPClassUID));
      series.instances.push({
        seriesInstanceUid: seriesUid,
        sopInstanceUid: sop,
        sopClassUid: isValidUid(sopClass) ? sopClass : undefined,
      });
    }
  }
  return { series: [...bySeries.values()], skipped };
}

/** The MPPS instances an image names in its Referenced Performed Procedure Step Sequence (0008,1111). */
export function referencedMppsUids(header: MppsDataset): string[] {
  const out: string[] = [];
  for (const item of items(header.ReferencedPerformedProcedureStepSequence)) {
    const uid = cleanUid(textOf(item.ReferencedSOPInstanceUID));
    if (isValidUid(uid)) out.push(uid);
  }
  return out;
}
