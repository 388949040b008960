/**
 * What the database tells about the study of a scan request: the cached set of studies with an active request (every
 * received image asks), and the study of a request made by an MPPS that named none, read from the images stored.
 */
import { In } from 'typeorm';
import type { Database } from './dataSource.js';
import { referencedMppsUids } from '../domain/mpps.js';

/** How long the set of active studies is trusted before it is read again (see `ActiveStudies`). */
const ACTIVE_STUDIES_TTL_MS = 5_000;

/**
 * Study UIDs of the active scans, loaded once and kept for a few seconds: every received image asks, and one query
 * per image cost more than the rest of storing it. A study becomes active only through the request rules (a new
 * request, or one resolved to its study), and both call `changed`; a scan that ended stays in the set for at most
 * ACTIVE_STUDIES_TTL_MS, which only costs a spare (debounced) reconcile trigger.
 */
export class ActiveStudies {
  private cached: { at: number; studies: Promise<Set<string>> } | undefined;

  constructor(private readonly db: Database) {}

  async has(studyInstanceUid: string): Promise<boolean> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > ACTIVE_STUDIES_TTL_MS) {
      const studies = this.db.source
        .getRepository(this.db.entities.Scan)
        .find({ where: { state: 'active' }, select: { studyInstanceUid: true } })
        .then((rows) => new Set(rows.flatMap((r) => (r.studyInstanceUid ? [r.studyInstanceUid] : []))));
      const entry = { at: now, studies };
      this.cached = entry;
      studies.catch(() => {
        if (this.cached === entry) this.cached = undefined;
      });
    }
    return (await this.cached.studies).has(studyInstanceUid);
  }

  changed(): void {
    this.cached = undefined;
  }
}

/** An MPPS without a StudyInstanceUID: images already stored that it names, or that name it, tell the study. */
export async function studyFromReceivedImages(
  db: Database,
  scanId: string,
  mppsUid: string,
): Promise<string | undefined> {
  const { Instance, ScanExpected } = db.entities;
  const byExpected = await db.source
    .getRepository(Instance)
    .createQueryBuilder('i')
    .innerJoin(ScanExpected.options.name, 'e', 'e.sopInstanceUid = i.sopInstanceUid')
    .select('i.studyInstanceUid', 'study')
    .where('e.scanId = :scanId', { scanId })
    .limit(1)
    .getRawOne<{ study: string }>();
  if (byExpected?.study) return byExpected.study;
  const candidates = await db.source
    .getRepository(Instance)
    .createQueryBuilder('i')
    .select(['i.studyInstanceUid', 'i.header'])
    .where('i.header LIKE :uid', { uid: `%${mppsUid}%` })
    .limit(20)
    .getMany();
  for (const c of candidates) {
    if (referencedMppsUids(JSON.parse(c.header) as Record<string, unknown>).includes(mppsUid)) {
      return c.studyInstanceUid;
    }
  }
  return undefined;
}

/**
 * Which of the unresolved scans `scanIds` a stored image belongs to: one whose MPPS lists the image, else one whose
 * MPPS the image names.
 */
export async function unresolvedScanOf(
  db: Database,
  scanIds: string[],
  sopInstanceUid: string,
): Promise<string | undefined> {
  const { Instance, Scan, ScanExpected } = db.entities;
  const hit = await db.source.getRepository(ScanExpected).findOne({ where: { scanId: In(scanIds), sopInstanceUid } });
  if (hit?.scanId) return hit.scanId;
  const row = await db.source.getRepository(Instance).findOne({ where: { sopInstanceUid }, select: { header: true } });
  const refs = row ? referencedMppsUids(JSON.parse(row.header) as Record<string, unknown>) : [];
  if (!refs.length) return undefined;
  const scan = await db.source.getRepository(Scan).findOne({ where: { id: In(scanIds), mppsUid: In(refs) } });
  return scan?.id;
}
