/**
 * What completion reads and writes of the received studies: a study and its series, their group keys, the instances
 * received and archived per study or series, and the studies with spooled images.
 */
import { In } from 'typeorm';
import type { Database } from './dataSource.js';
import type { SeriesRow, StudyRow } from './entities.js';

export async function findStudy(db: Database, studyInstanceUid: string): Promise<StudyRow | null> {
  return db.source.getRepository(db.entities.Study).findOne({ where: { studyInstanceUid } });
}

export async function seriesOfStudy(db: Database, studyInstanceUid: string): Promise<SeriesRow[]> {
  return db.source.getRepository(db.entities.Series).find({ where: { studyInstanceUid } });
}

export async function seriesByUids(db: Database, uids: string[]): Promise<SeriesRow[]> {
  return uids.length
    ? db.source.getRepository(db.entities.Series).find({ where: { seriesInstanceUid: In(uids) } })
    : [];
}

/** The study's group key, then each series' one. */
export async function writeGroupKeys(
  db: Database,
  studyInstanceUid: string,
  studyKey: string,
  series: Array<{ seriesInstanceUid: string; groupKey: string }>,
): Promise<void> {
  await db.source.getRepository(db.entities.Study).update({ studyInstanceUid }, { groupKey: studyKey });
  for (const x of series) {
    await db.source
      .getRepository(db.entities.Series)
      .update({ seriesInstanceUid: x.seriesInstanceUid }, { groupKey: x.groupKey });
  }
}

export async function archivedCount(db: Database, studyInstanceUid: string): Promise<number> {
  return db.source.getRepository(db.entities.Instance).countBy({ studyInstanceUid, state: 'archived' });
}

/** Per series of the study, the number of instances stored. */
export async function receivedPerSeries(db: Database, study: string): Promise<Map<string, number>> {
  const rows = await db.source
    .getRepository(db.entities.Instance)
    .createQueryBuilder('i')
    .select('i.seriesInstanceUid', 'series')
    .addSelect('COUNT(*)', 'n')
    .where('i.studyInstanceUid = :study', { study })
    .groupBy('i.seriesInstanceUid')
    .getRawMany<{ series: string; n: string | number }>();
  return new Map(rows.map((r) => [r.series, Number(r.n)]));
}

/** Studies with spooled images, each with the time its last image came (as the driver returns it). */
export async function spooledStudies(db: Database): Promise<Array<{ study: string; last: string | Date }>> {
  return db.source
    .getRepository(db.entities.Instance)
    .createQueryBuilder('i')
    .select('i.studyInstanceUid', 'study')
    .addSelect('MAX(i.receivedAt)', 'last')
    .where('i.state = :s', { s: 'spooled' })
    .groupBy('i.studyInstanceUid')
    .getRawMany<{ study: string; last: string | Date }>();
}
