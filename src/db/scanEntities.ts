import { EntitySchema } from 'typeorm';
import type { Dialect } from './entities.js';

/** One MPPS instance as it stands now; `dataset` is the merged N-CREATE + N-SET attributes (naturalized JSON). */
export interface MppsStepRow {
  sopInstanceUid: string;
  status: 'IN PROGRESS' | 'COMPLETED' | 'DISCONTINUED';
  scanId: string | null;
  studyInstanceUid: string | null;
  accessionNumber: string | null;
  patientId: string | null;
  callingAe: string | null;
  startDate: string | null;
  startTime: string | null;
  endDate: string | null;
  endTime: string | null;
  createdAt: Date;
  updatedAt: Date;
  /** When scannode saw the step reach COMPLETED or DISCONTINUED. */
  endedAt: Date | null;
  dataset: string;
}

/** Every N-CREATE / N-SET accepted, with the attributes it carried. */
export interface MppsEventRow {
  id: string;
  mppsUid: string;
  action: 'N-CREATE' | 'N-SET';
  statusBefore: string | null;
  statusAfter: string;
  callingAe: string | null;
  at: Date;
  dataset: string;
}

/** The states of a scan request, declared once (metrics, HTTP filters and the CLI read this list). */
export const SCAN_STATES = ['active', 'finished', 'failed', 'cancelled'] as const;
export type ScanState = (typeof SCAN_STATES)[number];

/** SQLite hands back MAX(datetime) as text in UTC without a zone; PostgreSQL a Date. */
export function parseDbDate(v: string | Date): Date {
  if (v instanceof Date) return v;
  if (/[zZ]|[+-]\d\d:?\d\d$/.test(v)) return new Date(v);
  return new Date(`${v.replace(' ', 'T')}Z`);
}
export type ScanSource = 'mpps' | 'cli' | 'file' | 'api';

export interface ScanRow {
  id: string;
  studyInstanceUid: string | null;
  accessionNumber: string | null;
  patientId: string | null;
  studyDate: string | null;
  /** The MPPS instance that created or last updated the request. */
  mppsUid: string | null;
  /** The remote retrieved from, by name (null or absent: the scanner). */
  remote?: string | null;
  state: ScanState;
  source: ScanSource;
  /** Name of its file in active-scans/ (null: no file, e.g. an MPPS whose study is not known yet and has no name). */
  fileName: string | null;
  reason: string | null;
  requestedAt: Date;
  updatedAt: Date;
  completedAt: Date | null;
}

/** Per scan, the SOP Instance UIDs it should end up with (from the MPPS Performed Series Sequence). */
export interface ScanExpectedRow {
  scanId: string;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  sopClassUid: string | null;
  mppsUid: string | null;
}

export function scanEntities(d: Dialect) {
  const MppsStep = new EntitySchema<MppsStepRow>({
    name: 'MppsStep',
    tableName: 'mpps_steps',
    columns: {
      sopInstanceUid: { name: 'sop_instance_uid', type: 'varchar', length: 64, primary: true },
      status: { type: 'varchar', length: 16 },
      scanId: { name: 'scan_id', type: 'varchar', length: 36, nullable: true },
      studyInstanceUid: { name: 'study_instance_uid', type: 'varchar', length: 64, nullable: true },
      accessionNumber: { name: 'accession_number', type: 'varchar', length: 64, nullable: true },
      patientId: { name: 'patient_id', type: 'varchar', length: 64, nullable: true },
      callingAe: { name: 'calling_ae', type: 'varchar', length: 16, nullable: true },
      startDate: { name: 'start_date', type: 'varchar', length: 8, nullable: true },
      startTime: { name: 'start_time', type: 'varchar', length: 16, nullable: true },
      endDate: { name: 'end_date', type: 'varchar', length: 8, nullable: true },
      endTime: { name: 'end_time', type: 'varchar', length: 16, nullable: true },
      createdAt: { name: 'created_at', type: d.timestamp },
      updatedAt: { name: 'updated_at', type: d.timestamp },
      endedAt: { name: 'ended_at', type: d.timestamp, nullable: true },
      dataset: { type: 'text' },
    },
  });
  const MppsEvent = new EntitySchema<MppsEventRow>({
    name: 'MppsEvent',
    tableName: 'mpps_events',
    columns: {
      id: { type: 'varchar', length: 36, primary: true },
      mppsUid: { name: 'mpps_uid', type: 'varchar', length: 64 },
      action: { type: 'varchar', length: 16 },
      statusBefore: { name: 'status_before', type: 'varchar', length: 16, nullable: true },
      statusAfter: { name: 'status_after', type: 'varchar', length: 16 },
      callingAe: { name: 'calling_ae', type: 'varchar', length: 16, nullable: true },
      at: { type: d.timestamp },
      dataset: { type: 'text' },
    },
  });
  const Scan = new EntitySchema<ScanRow>({
    name: 'Scan',
    tableName: 'scans',
    columns: {
      id: { type: 'varchar', length: 36, primary: true },
      studyInstanceUid: { name: 'study_instance_uid', type: 'varchar', length: 64, nullable: true },
      accessionNumber: { name: 'accession_number', type: 'varchar', length: 64, nullable: true },
      patientId: { name: 'patient_id', type: 'varchar', length: 64, nullable: true },
      studyDate: { name: 'study_date', type: 'varchar', length: 8, nullable: true },
      mppsUid: { name: 'mpps_uid', type: 'varchar', length: 64, nullable: true },
      remote: { type: 'varchar', length: 64, nullable: true },
      state: { type: 'varchar', length: 16 },
      source: { type: 'varchar', length: 16 },
      fileName: { name: 'file_name', type: 'varchar', length: 255, nullable: true },
      reason: { type: 'varchar', length: 512, nullable: true },
      requestedAt: { name: 'requested_at', type: d.timestamp },
      updatedAt: { name: 'updated_at', type: d.timestamp },
      completedAt: { name: 'completed_at', type: d.timestamp, nullable: true },
    },
  });
  const ScanExpected = new EntitySchema<ScanExpectedRow>({
    name: 'ScanExpected',
    tableName: 'scan_expected_instances',
    columns: {
      scanId: { name: 'scan_id', type: 'varchar', length: 36, primary: true },
      sopInstanceUid: { name: 'sop_instance_uid', type: 'varchar', length: 64, primary: true },
      seriesInstanceUid: { name: 'series_instance_uid', type: 'varchar', length: 64 },
      sopClassUid: { name: 'sop_class_uid', type: 'varchar', length: 64, nullable: true },
      mppsUid: { name: 'mpps_uid', type: 'varchar', length: 64, nullable: true },
    },
  });
  return { MppsStep, MppsEvent, Scan, ScanExpected };
}

export type ScanEntities = ReturnType<typeof scanEntities>;
