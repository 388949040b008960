import fs from 'node:fs';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import type { Database } from '../db/dataSource.js';
import { isUniqueViolation } from '../db/dataSource.js';
import { preparedStatements } from '../db/prepared.js';
import type { InstanceRow } from '../db/entities.js';
import type { Logger } from '../logging/logger.js';
import type { DimseResult, StoreRequestInfo, StoreSink, AssociationSummary } from '../dimse/types.js';
import { DATA_DIRS, insideDataDir, spoolPath } from '../domain/paths.js';
import { DicomStatus, DimseError, hex } from '../domain/status.js';
import { InvalidUidError, isValidUid, requireUid } from '../domain/uid.js';
import { pixelDataTruncation } from '../domain/pixelData.js';
import { isStorageSopClass } from '../domain/sopClass.js';
import { DirSync, SpoolWriter, storageError, type SpooledFile } from '../storage/spoolWriter.js';
import { parseHeader, parseHeaderFromFile, str, int, type Header } from '../storage/header.js';
import { compareDatasets, fsyncDir, moveNoReplace } from '../storage/files.js';
import { dropInstanceRow } from '../db/archiveRows.js';

export interface IngestOptions {
  onConflict: 'refuse' | 'quarantine';
}

export interface IngestedInstance {
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  source: InstanceRow['source'];
  duplicate: boolean;
}

/**
 * One image's way in: spool file (fsynced) -> header checked -> moved to incoming/<SOP>.dcm without overwriting ->
 * directory fsynced -> row committed -> Success. Used by the C-STORE SCP and by imports alike.
 * Emits 'instance' (IngestedInstance) after each commit.
 */
export class Ingest extends EventEmitter {
  private readonly incomingDir: string;
  private readonly dirSync: DirSync;
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly knownSeries = new Set<string>();
  private readonly pendingWrites = new Set<Promise<void>>();
  /** SOP Instance UIDs that another store of the same UID was waiting on: their early lookup is stale. */
  private readonly locksHeld = new Set<string>();
  private readonly instanceSql: ReturnType<typeof preparedStatements>;
  private readonly findPath: (sop: string) => Promise<{ path: unknown } | null>;

  constructor(
    private readonly db: Database,
    readonly dataDir: string,
    private readonly log: Logger,
    private readonly opts: IngestOptions,
  ) {
    super();
    for (const d of Object.values(DATA_DIRS)) fs.mkdirSync(path.join(dataDir, d), { recursive: true });
    this.incomingDir = path.join(dataDir, DATA_DIRS.incoming);
    this.dirSync = new DirSync(this.incomingDir, true);
    this.instanceSql = preparedStatements(db.source, db.entities.Instance);
    this.findPath = this.instanceSql.selectOneBy('sopInstanceUid', ['path'] as const);
  }

  /** The C-STORE SCP's storage hook. */
  openStore(req: StoreRequestInfo): StoreSink {
    if (!isValidUid(req.sopInstanceUid)) {
      throw new DimseError(
        DicomStatus.InvalidUid,
        `Affected SOP Instance UID ${JSON.stringify(req.sopInstanceUid)} is not a valid UID`,
      );
    }
    if (!isStorageSopClass(req.sopClassUid)) {
      throw new DimseError(DicomStatus.NoSuchSopClass, `${req.sopClassUid} is not a storage SOP class`);
    }
    // The duplicate lookup runs while the data arrives, not after it.
    const existing = this.lookup(req.sopInstanceUid);
    // Nobody awaits it when the store is aborted or refused: a database error then must not become an unhandled
    // rejection (which ends the process). `store` awaits the same promise and answers its failure.
    existing.catch(() => undefined);
    const writer = new SpoolWriter(this.incomingDir, req.sopInstanceUid, {
      sopClassUid: req.sopClassUid,
      sopInstanceUid: req.sopInstanceUid,
      transferSyntaxUid: req.transferSyntaxUid,
      sourceAeTitle: req.association.callingAe,
    });
    return {
      write: (chunk) => writer.write(chunk),
      abort: (reason) => {
        writer.abort();
        this.log.warn('C-STORE aborted, partial data removed', { sop: req.sopInstanceUid, reason });
      },
      finish: async (): Promise<DimseResult> => {
        const durable = writer.finish();
        // The header is checked on the main thread while the thread pool flushes and fsyncs the file.
        const checked = this.check(writer.received(), req.transferSyntaxUid, req.sopInstanceUid);
        let spooled: SpooledFile;
        try {
          spooled = await durable;
        } catch (err) {
          return this.failed(req.sopInstanceUid, err);
        }
        return this.place(spooled, checked, {
          existing,
          expectedSopInstanceUid: req.sopInstanceUid,
          transferSyntaxUid: req.transferSyntaxUid,
          source: 'dimse',
          callingAe: req.association.callingAe,
        });
      },
    };
  }

  /**
   * Takes a complete, fsynced Part 10 file (a spool `.part`, or a copy made by an import) into the store.
   * The file is consumed: moved into place, or removed when it is a duplicate or refused.
   */
  async commit(spooled: SpooledFile, ctx: PlaceContext): Promise<DimseResult & { instance?: IngestedInstance }> {
    return this.place(spooled, this.check(spooled, ctx.transferSyntaxUid, ctx.expectedSopInstanceUid), ctx);
  }

  /**
   * The header and the UIDs of what arrived, from memory (or 'need-file' when the header runs past the first
   * 64 KiB), or the DIMSE failure that refuses it.
   */
  private check(spooled: SpooledFile, transferSyntaxUid: string, expectedSopInstanceUid?: string): Checked {
    try {
      const complete = spooled.head.length >= spooled.metaLength + spooled.datasetLength;
      const parsed = parseHeader(spooled.head, complete);
      const truncated = pixelDataTruncation(
        spooled.head.subarray(spooled.metaLength),
        spooled.datasetLength,
        spooled.tail,
        transferSyntaxUid,
      );
      if (truncated) throw new DimseError(DicomStatus.Truncated, `data set is truncated: ${truncated}`);
      if (parsed === 'need-more') return 'need-file';
      return checkUids(parsed, expectedSopInstanceUid);
    } catch (err) {
      return { failure: err };
    }
  }

  /** Refuses, or takes the file into the store under its SOP Instance UID's lock. */
  private async place(
    spooled: SpooledFile,
    checked: Checked,
    ctx: PlaceContext,
  ): Promise<DimseResult & { instance?: IngestedInstance }> {
    if (checked === 'need-file') {
      try {
        checked = checkUids(parseHeaderFromFile(spooled.tmpPath), ctx.expectedSopInstanceUid);
      } catch (err) {
        checked = { failure: err };
      }
    }
    if ('failure' in checked) {
      fs.rmSync(spooled.tmpPath, { force: true });
      const err = checked.failure;
      if (err instanceof InvalidUidError)
        return this.failed(ctx.expectedSopInstanceUid, new DimseError(DicomStatus.InvalidUid, err.message));
      return this.failed(ctx.expectedSopInstanceUid, err);
    }
    const { header, uids } = checked;
    return this.withLock(uids.sop, () => this.store(spooled, header, uids, ctx));
  }

  private async store(
    spooled: SpooledFile,
    header: Header,
    uids: Uids,
    ctx: PlaceContext,
  ): Promise<DimseResult & { instance?: IngestedInstance }> {
    // A lookup started before the lock was taken is stale when another store of the same UID held the lock: look again.
    let existing: { path: string } | null;
    try {
      existing = ctx.existing && !this.locksHeld.has(uids.sop) ? await ctx.existing : await this.lookup(uids.sop);
    } catch (err) {
      // Without the index a duplicate cannot be told from a new instance: refuse, keep nothing, the sender retries.
      fs.rmSync(spooled.tmpPath, { force: true });
      this.log.error('cannot look up instance', { sop: uids.sop, err: String(err) });
      return this.failed(uids.sop, new DimseError(DicomStatus.ProcessingFailure, 'database unavailable'));
    }
    const relative = spoolPath(uids.sop);
    const target = insideDataDir(this.dataDir, relative);
    if (existing) {
      const storedPath = insideDataDir(this.dataDir, existing.path);
      if (fs.existsSync(storedPath)) return this.duplicate(spooled.tmpPath, storedPath, uids, ctx.source);
      // The row's file is gone (an operator removed site/raw/<Study> to re-send it, a retention job): this copy is
      // stored again, never discarded. The stale row goes first; until the new one is written the spool file alone
      // is the truth, and start-up recovery indexes a spool file without a row.
      try {
        await dropInstanceRow(this.db, uids.sop);
      } catch (err) {
        fs.rmSync(spooled.tmpPath, { force: true });
        this.log.error('cannot replace a stale instance row', { sop: uids.sop, err: String(err) });
        return this.failed(uids.sop, new DimseError(DicomStatus.ProcessingFailure, 'database unavailable'));
      }
      this.log.warn('stored file missing: the instance is stored again', { sop: uids.sop, was: existing.path });
    }
    try {
      if (moveNoReplace(spooled.tmpPath, target) === 'exists') {
        // A spool file without its row (a crash between rename and commit): the row is written below.
        if (!(await compareDatasets(spooled.tmpPath, target)))
          return await this.duplicate(spooled.tmpPath, target, uids, ctx.source);
        fs.rmSync(spooled.tmpPath, { force: true });
      }
    } catch (err) {
      fs.rmSync(spooled.tmpPath, { force: true });
      return this.failed(uids.sop, storageError(err));
    }
    // The directory fsync (making the move durable) and the row's commit run together; Success waits for both. A row
    // whose file did not survive a crash belongs to an instance that was never acknowledged: recovery drops it.
    const durable = this.dirSync.sync().then(
      () => undefined,
      (err: unknown) => err,
    );
    const row: InstanceRow = {
      sopInstanceUid: uids.sop,
      sopClassUid: uids.sopClass,
      transferSyntaxUid: ctx.transferSyntaxUid,
      studyInstanceUid: uids.study,
      seriesInstanceUid: uids.series,
      instanceNumber: int(header, 'InstanceNumber') ?? null,
      path: relative,
      size: spooled.metaLength + spooled.datasetLength,
      state: 'spooled',
      source: ctx.source,
      callingAe: ctx.callingAe ?? null,
      receivedAt: new Date(),
      archivedAt: null,
      header: JSON.stringify(header),
    };
    const dirError = await Promise.all([durable, this.index(header, uids, row)]).then(([d]) => d);
    if (dirError) return this.failed(uids.sop, storageError(dirError));
    return this.stored(header, uids, ctx.source);
  }

  private async index(header: Header, uids: { study: string; series: string }, row: InstanceRow): Promise<void> {
    try {
      await this.indexGroup(header, uids);
      await this.instanceSql.insert(row);
    } catch (err) {
      if (!isUniqueViolation(err)) {
        // The file stays in the spool; the start-up recovery indexes it. The sender must not think it is stored.
        this.log.error('cannot index instance', { sop: row.sopInstanceUid, err: String(err) });
        throw new DimseError(DicomStatus.ProcessingFailure, 'database unavailable');
      }
    }
  }

  private stored(
    header: Header,
    uids: { sop: string; study: string; series: string },
    source: InstanceRow['source'],
  ): DimseResult & { instance: IngestedInstance } {
    const instance: IngestedInstance = {
      sopInstanceUid: uids.sop,
      studyInstanceUid: uids.study,
      seriesInstanceUid: uids.series,
      source,
      duplicate: false,
    };
    // winston formats a line before its transports drop it by level: skip that work per image unless debugging.
    if (this.log.isDebugEnabled()) {
      this.log.debug('instance stored', {
        sop: uids.sop,
        patientId: str(header, 'PatientID'),
        patientName: str(header, 'PatientName'),
      });
    }
    this.emit('instance', instance);
    return { status: DicomStatus.Success, instance };
  }

  /** Same SOP Instance UID again: identical data is stored once; different data never overwrites. */
  private async duplicate(
    tmpPath: string,
    storedPath: string,
    uids: { sop: string; study: string; series: string },
    source: InstanceRow['source'],
  ): Promise<DimseResult & { instance?: IngestedInstance }> {
    const instance: IngestedInstance = {
      sopInstanceUid: uids.sop,
      studyInstanceUid: uids.study,
      seriesInstanceUid: uids.series,
      source,
      duplicate: true,
    };
    // Compared off the main thread: a re-sent 1 GiB instance must not stall the other associations.
    if (await compareDatasets(tmpPath, storedPath)) {
      fs.rmSync(tmpPath, { force: true });
      this.log.info('identical instance received again, stored once', { sop: uids.sop });
      return { status: DicomStatus.Success, instance };
    }
    if (this.opts.onConflict === 'quarantine') {
      const dest = path.join(this.dataDir, DATA_DIRS.conflicts, `${uids.sop}.${Date.now()}.dcm`);
      fs.renameSync(tmpPath, dest);
      // Success is answered for the quarantined copy: its new name must survive a power loss first.
      await fsyncDir(path.dirname(dest));
      this.log.warn('conflicting instance quarantined: same SOP Instance UID, different content', {
        sop: uids.sop,
        file: path.relative(this.dataDir, dest),
      });
      return { status: DicomStatus.Success, instance };
    }
    fs.rmSync(tmpPath, { force: true });
    this.log.warn('conflicting instance refused: same SOP Instance UID, different content', {
      sop: uids.sop,
      status: hex(DicomStatus.ConflictingDuplicate),
    });
    return {
      status: DicomStatus.ConflictingDuplicate,
      comment: 'SOP Instance UID already stored with different content',
    };
  }

  /** Patient / study / series rows, written once per series (the first instance of a series pays for it). */
  private async indexGroup(header: Header, uids: { study: string; series: string }): Promise<void> {
    if (this.knownSeries.has(uids.series)) return;
    const { Patient, Study, Series } = this.db.entities;
    const now = new Date();
    const patientId = (str(header, 'PatientID') ?? '').slice(0, 64);
    const ignore = async (entity: typeof Patient | typeof Study | typeof Series, values: object) =>
      this.db.source.createQueryBuilder().insert().into(entity).values(values).orIgnore().execute();
    await ignore(Patient, {
      patientId,
      patientName: str(header, 'PatientName')?.slice(0, 324) ?? null,
      birthDate: str(header, 'PatientBirthDate')?.slice(0, 8) ?? null,
      sex: str(header, 'PatientSex')?.slice(0, 16) ?? null,
      createdAt: now,
    });
    await ignore(Study, {
      studyInstanceUid: uids.study,
      patientId,
      accessionNumber: str(header, 'AccessionNumber')?.slice(0, 64) ?? null,
      studyDate: str(header, 'StudyDate')?.slice(0, 8) ?? null,
      studyTime: str(header, 'StudyTime')?.slice(0, 16) ?? null,
      studyDescription: str(header, 'StudyDescription')?.slice(0, 128) ?? null,
      createdAt: now,
    });
    await ignore(Series, {
      seriesInstanceUid: uids.series,
      studyInstanceUid: uids.study,
      seriesNumber: int(header, 'SeriesNumber') ?? null,
      modality: str(header, 'Modality')?.slice(0, 16) ?? null,
      seriesDescription: str(header, 'SeriesDescription')?.slice(0, 128) ?? null,
      createdAt: now,
    });
    this.knownSeries.add(uids.series);
  }

  private failed(sop: string | undefined, err: unknown): DimseResult {
    const e = err instanceof DimseError ? err : storageError(err);
    this.log.warn('C-STORE failed', { sop, status: hex(e.status), reason: e.message });
    return { status: e.status, comment: e.message };
  }

  /** The stored path of this SOP Instance UID, if any (asked by every C-STORE). */
  private lookup(sopInstanceUid: string): Promise<{ path: string } | null> {
    return this.findPath(sopInstanceUid) as Promise<{ path: string } | null>;
  }

  private async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const contended = this.locks.has(key);
    if (contended) this.locksHeld.add(key);
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const settled = run.catch(() => undefined);
    this.locks.set(key, settled);
    try {
      return await run;
    } finally {
      if (this.locks.get(key) === settled) {
        this.locks.delete(key);
        this.locksHeld.delete(key);
      }
    }
  }

  /**
   * Start-up recovery of the spool: a `.part` file is an unfinished transfer (never acknowledged) and is removed;
   * a `<SOP>.dcm` file without its row gets its row.
   */
  async recover(): Promise<{ indexed: number; removed: number }> {
    let indexed = 0;
    let removed = 0;
    const repo = this.db.source.getRepository(this.db.entities.Instance);
    for (const name of fs.readdirSync(this.incomingDir)) {
      const file = path.join(this.incomingDir, name);
      if (name.endsWith('.part') && !ownedByAnotherLiveProcess(name)) {
        fs.rmSync(file, { force: true });
        removed++;
        continue;
      }
      if (!name.endsWith('.dcm')) continue;
      const sop = name.slice(0, -4);
      if (!isValidUid(sop) || (await repo.existsBy({ sopInstanceUid: sop }))) continue;
      try {
        const header = parseHeaderFromFile(file);
        const size = fs.statSync(file).size;
        const uids = {
          sop: requireUid('SOPInstanceUID', header.SOPInstanceUID),
          study: requireUid('StudyInstanceUID', header.StudyInstanceUID),
          series: requireUid('SeriesInstanceUID', header.SeriesInstanceUID),
          sopClass: requireUid('SOPClassUID', header.SOPClassUID),
        };
        await this.indexGroup(header, uids);
        await repo.insert({
          sopInstanceUid: uids.sop,
          sopClassUid: uids.sopClass,
          transferSyntaxUid: str(header, 'TransferSyntaxUID') ?? '',
          studyInstanceUid: uids.study,
          seriesInstanceUid: uids.series,
          instanceNumber: int(header, 'InstanceNumber') ?? null,
          path: spoolPath(uids.sop),
          size,
          state: 'spooled',
          source: 'recovered',
          callingAe: null,
          receivedAt: new Date(),
          archivedAt: null,
          header: JSON.stringify(header),
        });
        indexed++;
      } catch (err) {
        this.log.error('spool file cannot be indexed, left in place', { file: name, err: String(err) });
      }
    }
    // The row and the directory fsync are written together, so a crash can leave a row whose file never became
    // durable. That instance was never acknowledged (Success waits for both): the row goes, the sender re-sends.
    let orphans = 0;
    const spooled = await repo.find({ where: { state: 'spooled' }, select: { sopInstanceUid: true, path: true } });
    for (const row of spooled) {
      if (fs.existsSync(insideDataDir(this.dataDir, row.path))) continue;
      await repo.delete({ sopInstanceUid: row.sopInstanceUid });
      orphans++;
    }
    if (indexed || removed || orphans) {
      this.log.info('spool recovered', { indexed, removedPartial: removed, rowsWithoutFile: orphans });
    }
    return { indexed, removed };
  }

  /** The association audit row. */
  recordAssociation(s: AssociationSummary): void {
    const repo = this.db.source.getRepository(this.db.entities.Association);
    const write = repo
      .insert({
        id: s.id,
        callingAe: s.callingAe.slice(0, 16),
        calledAe: s.calledAe.slice(0, 16),
        remoteAddress: s.remoteAddress.slice(0, 64),
        accepted: s.accepted,
        rejectReason: s.rejectReason?.slice(0, 256) ?? null,
        startedAt: s.startedAt,
        endedAt: s.endedAt,
        durationMs: s.endedAt.getTime() - s.startedAt.getTime(),
        instancesReceived: s.instancesReceived,
        bytesReceived: s.bytesReceived,
        failures: s.failures,
        aborted: s.aborted,
      })
      .then(
        () => undefined,
        (err: unknown) => void this.log.error('cannot record association', { err: String(err) }),
      );
    this.pendingWrites.add(write);
    void write.finally(() => this.pendingWrites.delete(write));
  }

  /** Waits for audit rows still being written (shutdown calls this before it closes the database). */
  async drain(): Promise<void> {
    await Promise.all([...this.pendingWrites]);
  }

  /** After the last store and import: releases the spool directory. */
  close(): Promise<void> {
    return this.dirSync.close();
  }
}

/**
 * Spool temporaries are named `...<pid>-<n>.part`. One that belongs to another process still running (a
 * `scannode import` beside the daemon) is that process's transfer in flight, not debris of a crash.
 */
function ownedByAnotherLiveProcess(name: string): boolean {
  const m = /[.-](\d+)-\d+\.part$/.exec(name);
  const pid = m ? Number(m[1]) : NaN;
  if (!Number.isInteger(pid) || pid === process.pid || pid <= 1) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

type Uids = { sop: string; study: string; series: string; sopClass: string };

/** Where an instance comes from, for `commit`. */
interface PlaceContext {
  expectedSopInstanceUid?: string;
  transferSyntaxUid: string;
  source: InstanceRow['source'];
  callingAe?: string;
  /** A lookup already started for this SOP Instance UID (the C-STORE command names it before the data). */
  existing?: Promise<{ path: string } | null>;
}
type Checked = { header: Header; uids: Uids } | { failure: unknown } | 'need-file';

function checkUids(header: Header, expectedSopInstanceUid: string | undefined): { header: Header; uids: Uids } {
  const uids = {
    sop: requireUid('SOPInstanceUID', header.SOPInstanceUID),
    study: requireUid('StudyInstanceUID', header.StudyInstanceUID),
    series: requireUid('SeriesInstanceUID', header.SeriesInstanceUID),
    sopClass: requireUid('SOPClassUID', header.SOPClassUID),
  };
  if (expectedSopInstanceUid && uids.sop !== expectedSopInstanceUid) {
    throw new DimseError(
      DicomStatus.DataSetDoesNotMatchSopClass,
      `SOP Instance UID in the data set (${uids.sop}) differs from the command (${expectedSopInstanceUid})`,
    );
  }
  return { header, uids };
}
