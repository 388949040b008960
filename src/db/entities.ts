import { EntitySchema } from 'typeorm';

/** Rows as the code sees them. Timestamps are Date; JSON columns are text holding JSON. */
export interface PatientRow {
  patientId: string;
  patientName: string | null;
  birthDate: string | null;
  sex: string | null;
  createdAt: Date;
}
export interface StudyRow {
  studyInstanceUid: string;
  patientId: string;
  accessionNumber: string | null;
  studyDate: string | null;
  studyTime: string | null;
  studyDescription: string | null;
  /** NiDB-style group key (completion.grouping 'nidb'), set on completion; null under 'uid'. */
  groupKey?: string | null;
  createdAt: Date;
}
export interface SeriesRow {
  seriesInstanceUid: string;
  studyInstanceUid: string;
  seriesNumber: number | null;
  modality: string | null;
  seriesDescription: string | null;
  /** NiDB-style group key (completion.grouping 'nidb'), set on completion; null under 'uid'. */
  groupKey?: string | null;
  createdAt: Date;
}
export interface InstanceRow {
  sopInstanceUid: string;
  sopClassUid: string;
  transferSyntaxUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  instanceNumber: number | null;
  /** dataDir-relative path of the file: incoming/... while spooled, site/raw/... once archived. */
  path: string;
  size: number;
  state: 'spooled' | 'archived';
  source: 'dimse' | 'import' | 'recovered';
  callingAe: string | null;
  receivedAt: Date;
  archivedAt: Date | null;
  /** The header attributes (naturalized DICOM JSON, no pixel data), as sendit keeps them. */
  header: string;
}
export interface AssociationRow {
  id: string;
  callingAe: string;
  calledAe: string;
  remoteAddress: string;
  accepted: boolean;
  rejectReason: string | null;
  startedAt: Date;
  endedAt: Date;
  durationMs: number;
  instancesReceived: number;
  bytesReceived: number;
  failures: number;
  aborted: boolean;
}

/** Column types that differ between the two databases. */
export interface Dialect {
  timestamp: 'datetime' | 'timestamptz';
}

export function dialectOf(type: string): Dialect {
  return { timestamp: type === 'postgres' ? 'timestamptz' : 'datetime' };
}

/** bigint comes back from pg as a string; sizes stay far below 2^53. */
const bigintNumber = { to: (v: number) => v, from: (v: string | number | null) => (v === null ? v : Number(v)) };

export function entities(d: Dialect) {
  const Patient = new EntitySchema<PatientRow>({
    name: 'Patient',
    tableName: 'patients',
    columns: {
      patientId: { name: 'patient_id', type: 'varchar', length: 64, primary: true },
      patientName: { name: 'patient_name', type: 'varchar', length: 324, nullable: true },
      birthDate: { name: 'birth_date', type: 'varchar', length: 8, nullable: true },
      sex: { type: 'varchar', length: 16, nullable: true },
      createdAt: { name: 'created_at', type: d.timestamp },
    },
  });
  const Study = new EntitySchema<StudyRow>({
    name: 'Study',
    tableName: 'studies',
    columns: {
      studyInstanceUid: { name: 'study_instance_uid', type: 'varchar', length: 64, primary: true },
      patientId: { name: 'patient_id', type: 'varchar', length: 64 },
      accessionNumber: { name: 'accession_number', type: 'varchar', length: 64, nullable: true },
      studyDate: { name: 'study_date', type: 'varchar', length: 8, nullable: true },
      studyTime: { name: 'study_time', type: 'varchar', length: 16, nullable: true },
      studyDescription: { name: 'study_description', type: 'varchar', length: 128, nullable: true },
      groupKey: { name: 'group_key', type: 'varchar', length: 400, nullable: true },
      createdAt: { name: 'created_at', type: d.timestamp },
    },
  });
  const Series = new EntitySchema<SeriesRow>({
    name: 'Series',
    tableName: 'series',
    columns: {
      seriesInstanceUid: { name: 'series_instance_uid', type: 'varchar', length: 64, primary: true },
      studyInstanceUid: { name: 'study_instance_uid', type: 'varchar', length: 64 },
      seriesNumber: { name: 'series_number', type: 'integer', nullable: true },
      modality: { type: 'varchar', length: 16, nullable: true },
      seriesDescription: { name: 'series_description', type: 'varchar', length: 128, nullable: true },
      groupKey: { name: 'group_key', type: 'varchar', length: 400, nullable: true },
      createdAt: { name: 'created_at', type: d.timestamp },
    },
  });
  const Instance = new EntitySchema<InstanceRow>({
    name: 'Instance',
    tableName: 'instances',
    columns: {
      sopInstanceUid: { name: 'sop_instance_uid', type: 'varchar', length: 64, primary: true },
      sopClassUid: { name: 'sop_class_uid', type: 'varchar', length: 64 },
      transferSyntaxUid: { name: 'transfer_syntax_uid', type: 'varchar', length: 64 },
      studyInstanceUid: { name: 'study_instance_uid', type: 'varchar', length: 64 },
      seriesInstanceUid: { name: 'series_instance_uid', type: 'varchar', length: 64 },
      instanceNumber: { name: 'instance_number', type: 'integer', nullable: true },
      path: { type: 'varchar', length: 512 },
      size: { type: 'bigint', transformer: bigintNumber },
      state: { type: 'varchar', length: 16 },
      source: { type: 'varchar', length: 16 },
      callingAe: { name: 'calling_ae', type: 'varchar', length: 16, nullable: true },
      receivedAt: { name: 'received_at', type: d.timestamp },
      archivedAt: { name: 'archived_at', type: d.timestamp, nullable: true },
      header: { type: 'text' },
    },
  });
  const Association = new EntitySchema<AssociationRow>({
    name: 'Association',
    tableName: 'associations',
    columns: {
      id: { type: 'varchar', length: 36, primary: true },
      callingAe: { name: 'calling_ae', type: 'varchar', length: 16 },
      calledAe: { name: 'called_ae', type: 'varchar', length: 16 },
      remoteAddress: { name: 'remote_address', type: 'varchar', length: 64 },
      accepted: { type: 'boolean' },
      rejectReason: { name: 'reject_reason', type: 'varchar', length: 256, nullable: true },
      startedAt: { name: 'started_at', type: d.timestamp },
      endedAt: { name: 'ended_at', type: d.timestamp },
      durationMs: { name: 'duration_ms', type: 'integer' },
      instancesReceived: { name: 'instances_received', type: 'integer' },
      bytesReceived: { name: 'bytes_received', type: 'bigint', transformer: bigintNumber },
      failures: { type: 'integer' },
      aborted: { type: 'boolean' },
    },
  });
  return { Patient, Study, Series, Instance, Association };
}

export type Entities = ReturnType<typeof entities>;
