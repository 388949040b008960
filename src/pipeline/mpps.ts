import path from 'node:path';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import dcmjs from 'dcmjs';
import type { Database } from '../db/dataSource.js';
import type { MppsStepRow } from '../db/scanEntities.js';
import { findMppsStep, insertMppsStep, mppsStepExists, updateMppsStep } from '../db/mppsStore.js';
import type { NRequest, NResponse } from '../dimse/types.js';
import type { Logger } from '../logging/logger.js';
import { DATA_DIRS } from '../domain/paths.js';
import { DicomStatus, DimseError } from '../domain/status.js';
import { newUid, requireUid } from '../domain/uid.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION } from '../storage/part10.js';
import {
  MPPS_SOP_CLASS_UID,
  applySet,
  checkCreate,
  checkSet,
  expectedInstances,
  isFinal,
  summarize,
  withEndDateTime,
  type MppsDataset,
  type MppsStatus,
} from '../domain/mpps.js';
import type { ScanRequests } from './scans/scanRequests.js';
import { writeFileAtomic } from '../storage/atomicWrite.js';
import { Mutex } from 'async-mutex';

const { DicomDict, DicomMetaDictionary } = dcmjs.data;
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';

/** JSON for the database: binary values (rare in MPPS) are left out rather than turned into `{}`. */
function toJson(ds: MppsDataset): string {
  return JSON.stringify(ds, (_k, v: unknown) => (v instanceof ArrayBuffer || ArrayBuffer.isView(v) ? undefined : v));
}

/**
 * The MPPS SCP (PS3.4 Annex F): N-CREATE and N-SET. Every accepted request is a row in `mpps_events`, the step as it
 * stands is a row in `mpps_steps` and `scanner/<SOP Instance UID>.dcm`, and the step's scan request is created or
 * updated. Requests are handled one at a time: MPPS traffic is a few messages per procedure.
 */
export class MppsService {
  private readonly mutex = new Mutex();
  private readonly dir: string;

  constructor(
    private readonly db: Database,
    readonly dataDir: string,
    private readonly log: Logger,
    private readonly scans: ScanRequests,
  ) {
    this.dir = path.join(dataDir, DATA_DIRS.scanner);
    fs.mkdirSync(this.dir, { recursive: true });
  }

  readonly nCreate = (req: NRequest): Promise<NResponse> => this.serial(() => this.create(req));
  readonly nSet = (req: NRequest): Promise<NResponse> => this.serial(() => this.set(req));

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.mutex.runExclusive(fn);
  }

  private checkSopClass(req: NRequest): void {
    if (req.sopClassUid && req.sopClassUid !== MPPS_SOP_CLASS_UID) {
      throw new DimseError(DicomStatus.NoSuchSopClass, `${req.sopClassUid} is not the MPPS SOP class`);
    }
  }

  private async create(req: NRequest): Promise<NResponse> {
    this.checkSopClass(req);
    const uid = checkCreate(req.sopInstanceUid, req.dataset, newUid);
    if (await mppsStepExists(this.db, uid)) {
      throw new DimseError(DicomStatus.DuplicateSopInstance, `MPPS instance ${uid} already exists`);
    }
    const now = new Date();
    const stored: MppsDataset = {
      ...(req.dataset ?? {}),
      SOPClassUID: MPPS_SOP_CLASS_UID,
      SOPInstanceUID: uid,
      PerformedProcedureStepStatus: 'IN PROGRESS',
    };
    this.writeFile(uid, stored);
    const summary = summarize(stored, 'IN PROGRESS');
    const row: MppsStepRow = {
      sopInstanceUid: uid,
      status: 'IN PROGRESS',
      scanId: null,
      ...this.columns(summary),
      callingAe: req.association.callingAe || null,
      createdAt: now,
      updatedAt: now,
      endedAt: null,
      dataset: toJson(stored),
    };
    await insertMppsStep(this.db, row, this.event(uid, 'N-CREATE', null, 'IN PROGRESS', req, now));
    this.log.info('MPPS IN PROGRESS', {
      mpps: uid,
      study: summary.studyInstanceUids[0],
      callingAe: req.association.callingAe,
    });
    this.log.debug('MPPS patient', { mpps: uid, patientId: summary.patientId, patientName: summary.patientName });
    await this.link(uid, null, stored, 'IN PROGRESS');
    return { status: DicomStatus.Success, sopInstanceUid: uid };
  }

  private async set(req: NRequest): Promise<NResponse> {
    this.checkSopClass(req);
    const step = req.sopInstanceUid ? await findMppsStep(this.db, req.sopInstanceUid) : null;
    const before = step?.status;
    const next = checkSet(before, req.dataset);
    const uid = step!.sopInstanceUid;
    const now = new Date();
    const merged = withEndDateTime(
      { ...applySet(JSON.parse(step!.dataset) as MppsDataset, req.dataset), PerformedProcedureStepStatus: next },
      next,
      now,
    );
    this.writeFile(uid, merged);
    const summary = summarize(merged, next);
    await updateMppsStep(
      this.db,
      uid,
      {
        status: next,
        ...this.columns(summary),
        updatedAt: now,
        endedAt: isFinal(next) ? now : null,
        dataset: toJson(merged),
      },
      this.event(uid, 'N-SET', before ?? null, next, req, now),
    );
    if (next !== before) {
      this.log.info(`MPPS ${next}`, {
        mpps: uid,
        study: summary.studyInstanceUids[0],
        end: isFinal(next) ? `${summary.endDate ?? ''}${summary.endTime ?? ''}` : undefined,
      });
    }
    await this.link(uid, step!.scanId, merged, next);
    return { status: DicomStatus.Success, sopInstanceUid: uid };
  }

  /** The scan request side; a failure there is logged, the step itself is stored and answered Success. */
  private async link(uid: string, scanId: string | null, ds: MppsDataset, status: MppsStatus): Promise<void> {
    const { series, skipped } = expectedInstances(ds);
    if (skipped) this.log.warn('MPPS references with invalid UIDs ignored', { mpps: uid, skipped });
    try {
      await this.scans.linkMpps({ mppsUid: uid, scanId, summary: summarize(ds, status), expected: series });
    } catch (err) {
      this.log.error('cannot update the scan request of an MPPS', { mpps: uid, err: String(err) });
    }
  }

  private columns(s: ReturnType<typeof summarize>) {
    const cut = (v: string | undefined, n: number) => (v === undefined ? null : v.slice(0, n));
    return {
      studyInstanceUid: s.studyInstanceUids[0] ?? null,
      accessionNumber: cut(s.accessionNumber, 64),
      patientId: cut(s.patientId, 64),
      startDate: cut(s.startDate, 8),
      startTime: cut(s.startTime, 16),
      endDate: cut(s.endDate, 8),
      endTime: cut(s.endTime, 16),
    };
  }

  private event(
    mppsUid: string,
    action: 'N-CREATE' | 'N-SET',
    statusBefore: string | null,
    statusAfter: string,
    req: NRequest,
    at: Date,
  ) {
    return {
      id: randomUUID(),
      mppsUid,
      action,
      statusBefore,
      statusAfter,
      callingAe: req.association.callingAe || null,
      at,
      dataset: toJson(req.dataset ?? {}),
    };
  }

  /**
   * `scanner/<uid>.dcm`, a Part 10 file in explicit VR little endian, replaced atomically. dcmjs writes text as
   * UTF-8, so a data set with any non-ASCII text is labelled ISO_IR 192 whatever the scanner sent.
   */
  private writeFile(uid: string, ds: MppsDataset): void {
    const file = path.join(this.dir, `${requireUid('SOPInstanceUID', uid)}.dcm`);
    // Private attributes arrive as bare tags that dcmjs cannot write back without their creator's dictionary.
    const data: MppsDataset = Object.fromEntries(
      Object.entries(ds).filter(([k]) => !/^[0-9A-Fa-f]{3}[13579BDFbdf][0-9A-Fa-f]{4}$/.test(k)),
    );
    // eslint-disable-next-line no-control-regex -- any byte outside ASCII needs a character set
    if (/[^\x00-\x7f]/.test(toJson(data))) data.SpecificCharacterSet = 'ISO_IR 192';
    const meta = {
      FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
      MediaStorageSOPClassUID: MPPS_SOP_CLASS_UID,
      MediaStorageSOPInstanceUID: uid,
      TransferSyntaxUID: EXPLICIT_VR_LE,
      ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
      ImplementationVersionName: IMPLEMENTATION_VERSION,
    };
    const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
    dict.dict = DicomMetaDictionary.denaturalizeDataset(data);
    writeFileAtomic(file, Buffer.from(dict.write()));
  }
}
