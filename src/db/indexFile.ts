/** Index rows (patient, study, series, instance) for a file found on disk, from its parsed header. */
import type { Database } from './dataSource.js';
import type { InstanceRow } from './entities.js';
import { isUniqueViolation } from './dataSource.js';

/** Header values as the receive path stores them (src/storage/header.ts `str` / `int`). */
export interface IndexedHeader {
  text(key: string): string | undefined;
  int(key: string): number | undefined;
  /** The header as JSON (instances.header). */
  json: string;
}

/**
 * Inserts the patient / study / series rows when absent and the instance row. Returns false when the instance row
 * already existed (someone indexed it meanwhile). Used by the archive recovery and `scannode reindex`.
 * (The receive path writes the same rows in src/pipeline/ingest.ts; both should meet here, see issue 14.)
 */
export async function indexFoundFile(
  db: Database,
  h: IndexedHeader,
  row: Omit<InstanceRow, 'header' | 'instanceNumber'>,
): Promise<boolean> {
  const { Patient, Study, Series, Instance } = db.entities;
  const now = new Date();
  const patientId = (h.text('PatientID') ?? '').slice(0, 64);
  const ignore = async (entity: typeof Patient | typeof Study | typeof Series, values: object) =>
    db.source.createQueryBuilder().insert().into(entity).values(values).orIgnore().execute();
  await ignore(Patient, {
    patientId,
    patientName: h.text('PatientName')?.slice(0, 324) ?? null,
    birthDate: h.text('PatientBirthDate')?.slice(0, 8) ?? null,
    sex: h.text('PatientSex')?.slice(0, 16) ?? null,
    createdAt: now,
  });
  await ignore(Study, {
    studyInstanceUid: row.studyInstanceUid,
    patientId,
    accessionNumber: h.text('AccessionNumber')?.slice(0, 64) ?? null,
    studyDate: h.text('StudyDate')?.slice(0, 8) ?? null,
    studyTime: h.text('StudyTime')?.slice(0, 16) ?? null,
    studyDescription: h.text('StudyDescription')?.slice(0, 128) ?? null,
    createdAt: now,
  });
  await ignore(Series, {
    seriesInstanceUid: row.seriesInstanceUid,
    studyInstanceUid: row.studyInstanceUid,
    seriesNumber: h.int('SeriesNumber') ?? null,
    modality: h.text('Modality')?.slice(0, 16) ?? null,
    seriesDescription: h.text('SeriesDescription')?.slice(0, 128) ?? null,
    createdAt: now,
  });
  try {
    await db.source
      .getRepository(Instance)
      .insert({ ...row, instanceNumber: h.int('InstanceNumber') ?? null, header: h.json });
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}
