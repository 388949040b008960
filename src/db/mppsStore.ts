/**
 * MPPS steps' data access: a step and its event written together (N-CREATE, N-SET), a step read by its UID, the
 * steps' link to their scan request.
 */
import type { Database } from './dataSource.js';
import { fitRow } from './fit.js';
import type { MppsEventRow, MppsStepRow } from './scanEntities.js';

export async function mppsStepExists(db: Database, sopInstanceUid: string): Promise<boolean> {
  return db.source.getRepository(db.entities.MppsStep).existsBy({ sopInstanceUid });
}

export async function findMppsStep(db: Database, sopInstanceUid: string): Promise<MppsStepRow | null> {
  return db.source.getRepository(db.entities.MppsStep).findOneBy({ sopInstanceUid });
}

/** N-CREATE: the new step and its event in one transaction. */
export async function insertMppsStep(db: Database, step: MppsStepRow, event: MppsEventRow): Promise<void> {
  await db.source.transaction(async (m) => {
    await m.insert(db.entities.MppsStep, fitRow(db.entities.MppsStep, step));
    await m.insert(db.entities.MppsEvent, fitRow(db.entities.MppsEvent, event));
  });
}

/** N-SET: the step's new columns and its event in one transaction. */
export async function updateMppsStep(
  db: Database,
  sopInstanceUid: string,
  change: Partial<MppsStepRow>,
  event: MppsEventRow,
): Promise<void> {
  await db.source.transaction(async (m) => {
    await m.update(db.entities.MppsStep, { sopInstanceUid }, fitRow(db.entities.MppsStep, change));
    await m.insert(db.entities.MppsEvent, fitRow(db.entities.MppsEvent, event));
  });
}

/** The status of one step, or null when it is unknown. */
export async function mppsStatusOf(db: Database, sopInstanceUid: string): Promise<string | null> {
  const step = await db.source
    .getRepository(db.entities.MppsStep)
    .findOne({ where: { sopInstanceUid }, select: { status: true } });
  return step?.status ?? null;
}

/** A step now belongs to a scan request. */
export async function linkMppsStep(db: Database, sopInstanceUid: string, scanId: string): Promise<void> {
  await db.source.getRepository(db.entities.MppsStep).update({ sopInstanceUid }, { scanId });
}

/** The steps of a scan: moved to another scan and/or given the study that scan resolved to. */
export async function updateStepsOfScan(
  db: Database,
  scanId: string,
  change: Partial<Pick<MppsStepRow, 'scanId' | 'studyInstanceUid'>>,
): Promise<void> {
  await db.source.getRepository(db.entities.MppsStep).update({ scanId }, change);
}
