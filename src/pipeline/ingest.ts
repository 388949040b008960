import fs from 'node:fs';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import type { Database } from '../db/dataSource.js';
import { preparedStatements } from '../db/prepared.js';
import type { InstanceRow } from '../db/entities.js';
import type { Logger } from '../logging/logger.js';
import type { DimseResult, StoreRequestInfo, StoreSink } from '../dimse/types.js';
import { DATA_DIRS, insideDataDir, spoolDirs, spoolPath, type SpoolDirs } from '../domain/paths.js';
import { DicomStatus, DimseError, hex } from '../domain/status.js';
import { InvalidUidError, isValidUid, requireUid } from '../domain/uid.js';
import { pixelDataTruncation } from '../domain/pixelData.js';
import { isStorageSopClass } from '../domain/sopClass.js';
import { SpoolWriter, storageError, type SpooledFile } from '../storage/spoolWriter.js';
import { indexAttributes, parseHeader, parseHeaderFromFile, str, type Header } from '../storage/header.js';
import { compareDatasets, fsyncDir } from '../storage/files.js';
import { SpoolPool } from '../storage/spoolPool.js';
import { dropInstanceRow } from '../db/instanceStore.js';
import { IndexWriter, type IndexJob } from './indexWriter.js';
import { indexRows } from '../db/instanceIndex.js';
import { recoverSpool, type SpoolRecoveryCounts } from './spoolRecovery.js';
import { KeyedMutex } from '../scheduler/keyedMutex.js';

export interface IngestOptions {
  onConflict: 'refuse' | 'quarantine';
  /** spool.poolSize: empty spool files kept ready (0: each store creates its own). */
  poolSize?: number;
  /** This node's spool (paths.ts spoolDirs): incoming/ itself unless nodes share the data directory. */
  spool?: SpoolDirs;
}

export interface IngestedInstance {
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  source: InstanceRow['source'];
  duplicate: boolean;
}

/**
 * One image's way in. C-STORE: data set written into a pool file, sealed, one fdatasync -> header checked, duplicate
 * looked up -> Success; then (IndexWriter) moved to incoming/<SOP>.dcm and its row group-committed. Import: its
 * fsynced copy goes through the same IndexWriter, and `commit` answers once the row is written.
 * Emits 'instance' (IngestedInstance) after each commit.
 */
export class Ingest extends EventEmitter {
  private readonly pool: SpoolPool;
  /** This node's spool folders (relative to dataDir). */
  readonly spool: SpoolDirs;
  private readonly writer: IndexWriter;
  private readonly locks = new KeyedMutex();
  /** SOP Instance UIDs that another store of the same UID was waiting on: their early lookup is stale. */
  private readonly locksHeld = new Set<string>();
  private readonly findPath: (sop: string) => Promise<{ path: unknown } | null>;

  constructor(
    private readonly db: Database,
    readonly dataDir: string,
    private readonly log: Logger,
    private readonly opts: IngestOptions,
  ) {
    super();
    this.spool = opts.spool ?? spoolDirs();
    for (const d of [...Object.values(DATA_DIRS), this.spool.incoming, this.spool.pool])
      fs.mkdirSync(path.join(dataDir, d), { recursive: true });
    this.pool = new SpoolPool(path.join(dataDir, this.spool.pool), opts.poolSize ?? 32, log);
    this.writer = new IndexWriter(db, dataDir, log, {
      onCommitted: (job) => this.committed(job),
    });
    this.findPath = preparedStatements(db.source, db.entities.Instance).selectOneBy('sopInstanceUid', [
      'path',
    ] as const);
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
    const file = this.pool.take();
    const writer = new SpoolWriter(file, {
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
        // A file the pool did not have ready is a new name: its directory's fsync joins the one flush.
        const durable = file.fresh
          ? writer.finish().then(async (f) => (await this.pool.syncDir(), f))
          : writer.finish();
        const ctx: PlaceContext = {
          existing,
          expectedSopInstanceUid: req.sopInstanceUid,
          transferSyntaxUid: req.transferSyntaxUid,
          source: 'dimse',
          callingAe: req.association.callingAe,
        };
        // The header is checked and the index rows built on the main thread while the disk flushes the file.
        const checked = this.check(writer.received(), ctx);
        let spooled: SpooledFile;
        try {
          spooled = await durable;
        } catch (err) {
          // Not acknowledged: nothing of it may be recovered later.
          fs.rmSync(file.path, { force: true });
          return this.failed(req.sopInstanceUid, err);
        }
        return this.place(spooled, checked, ctx);
      },
    };
  }

  /**
   * Takes a complete, fsynced Part 10 file (a spool `.part`, or a copy made by an import) into the store.
   * The file is consumed: moved into place, or removed when it is a duplicate or refused.
   */
  async commit(spooled: SpooledFile, ctx: PlaceContext): Promise<DimseResult & { instance?: IngestedInstance }> {
    return this.place(spooled, this.check(spooled, ctx), ctx);
  }

  /**
   * The header, UIDs and index rows of what arrived, from memory (or 'need-file' when the header runs past the first
   * 64 KiB), or the DIMSE failure that refuses it.
   */
  private check(spooled: SpooledFile, ctx: PlaceContext): Checked {
    try {
      const complete = spooled.head.length >= spooled.metaLength + spooled.datasetLength;
      const parsed = parseHeader(spooled.head, complete);
      const truncated = pixelDataTruncation(
        spooled.head.subarray(spooled.metaLength),
        spooled.datasetLength,
        spooled.tail,
        ctx.transferSyntaxUid,
      );
      if (truncated) throw new DimseError(DicomStatus.Truncated, `data set is truncated: ${truncated}`);
      if (parsed === 'need-more') return 'need-file';
      return this.accepted(parsed, spooled, ctx);
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
        checked = this.accepted(parseHeaderFromFile(spooled.tmpPath), spooled, ctx);
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
    return this.withLock(checked.uids.sop, () => this.store(spooled, checked, ctx));
  }

  /** The UIDs checked, and the rows the index will get if the file is stored (they wait for nothing durable). */
  private accepted(header: Header, spooled: SpooledFile, ctx: PlaceContext): Accepted {
    const uids = checkUids(header, ctx.expectedSopInstanceUid);
    const { row, groups } = indexRows(indexAttributes(header), {
      ...uids,
      path: spoolPath(uids.sop, this.spool),
      size: spooled.metaLength + spooled.datasetLength,
      transferSyntaxUid: ctx.transferSyntaxUid,
      state: 'spooled',
      source: ctx.source,
      callingAe: ctx.callingAe ?? null,
    });
    return { header, uids, row, groups };
  }

  private async store(
    spooled: SpooledFile,
    { header, uids, row, groups }: Accepted,
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
    const target = insideDataDir(this.dataDir, row.path);
    // Acknowledged but not indexed yet: its row is in the next group, and its file is what is stored.
    const pending = this.writer.pendingFile(uids.sop);
    if (pending) return this.duplicate(spooled.tmpPath, pending, uids, ctx.source);
    if (existing) {
      const storedPath = insideDataDir(this.dataDir, existing.path);
      if (fs.existsSync(storedPath)) return this.duplicate(spooled.tmpPath, storedPath, uids, ctx.source);
      // The row's file is gone (an operator removed site/raw/<Study> to re-send it, a retention job): this copy is
      // stored again, never discarded. The stale row goes first (the writer's insert keeps rows already there); until
      // the new one is written the spool file alone is the truth, and start-up recovery indexes it.
      try {
        await dropInstanceRow(this.db, uids.sop);
      } catch (err) {
        fs.rmSync(spooled.tmpPath, { force: true });
        this.log.error('cannot replace a stale instance row', { sop: uids.sop, err: String(err) });
        return this.failed(uids.sop, new DimseError(DicomStatus.ProcessingFailure, 'database unavailable'));
      }
      this.log.warn('stored file missing: the instance is stored again', { sop: uids.sop, was: existing.path });
    }
    // A spool file without a row (its group committed after the lookup ran, or recovery could not index it): the
    // same data gets its row through the writer; other data is a conflict.
    if (fs.existsSync(target) && !(await compareDatasets(spooled.tmpPath, target))) {
      return this.duplicate(spooled.tmpPath, target, uids, ctx.source);
    }
    const job = this.writer.add({ sop: uids.sop, file: spooled.tmpPath, target, row, groups });
    const instance = this.instanceOf(uids, ctx.source, false);
    if (ctx.source === 'dimse') {
      // The file is durable and sealed: Success now; the final name and the row follow (IndexWriter), and recovery
      // redoes them after a crash.
      this.debugStored(header, uids.sop);
      return { status: DicomStatus.Success, instance, after: job.firstAttempt };
    }
    // An import reports what the index holds: it waits for the row (or the first failure to write it).
    const err = await job.firstAttempt;
    if (err) return this.failed(uids.sop, new DimseError(DicomStatus.ProcessingFailure, 'database unavailable'));
    this.debugStored(header, uids.sop);
    return { status: DicomStatus.Success, instance };
  }

  /** The rows of an acknowledged instance are committed: the rest of the pipeline hears of it now. */
  private committed(job: IndexJob): void {
    const r = job.row;
    const uids = { sop: r.sopInstanceUid, study: r.studyInstanceUid, series: r.seriesInstanceUid };
    this.emit('instance', this.instanceOf(uids, r.source, false));
  }

  private instanceOf(
    uids: { sop: string; study: string; series: string },
    source: InstanceRow['source'],
    duplicate: boolean,
  ): IngestedInstance {
    return {
      sopInstanceUid: uids.sop,
      studyInstanceUid: uids.study,
      seriesInstanceUid: uids.series,
      source,
      duplicate,
    };
  }

  private debugStored(header: Header, sop: string): void {
    // winston formats a line before its transports drop it by level: skip that work per image unless debugging.
    if (this.log.isDebugEnabled()) {
      this.log.debug('instance stored', {
        sop,
        patientId: str(header, 'PatientID'),
        patientName: str(header, 'PatientName'),
      });
    }
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
    if (this.locks.has(key)) this.locksHeld.add(key);
    try {
      return await this.locks.run(key, fn);
    } finally {
      if (!this.locks.has(key)) this.locksHeld.delete(key);
    }
  }

  /**
   * Start-up recovery of the spool (spoolRecovery.ts), then the pool starts filling. Not for a process that runs
   * beside a daemon (`scannode import`).
   */
  async recover(): Promise<SpoolRecoveryCounts> {
    const counts = await recoverSpool(this.db, this.dataDir, this.log, { spool: this.spool });
    this.pool.start();
    return counts;
  }

  /** After the last store and import: writes the rows still queued and empties the pool. */
  async close(): Promise<void> {
    await this.writer.stop();
    await this.pool.stop();
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
type Accepted = { header: Header; uids: Uids } & ReturnType<typeof indexRows>;
type Checked = Accepted | { failure: unknown } | 'need-file';

function checkUids(header: Header, expectedSopInstanceUid: string | undefined): Uids {
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
  return uids;
}
