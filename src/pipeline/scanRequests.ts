import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { In, IsNull } from 'typeorm';
import type { Database } from '../db/dataSource.js';
import type { MppsStepRow, ScanRow, ScanSource, ScanState } from '../db/scanEntities.js';
import type { Logger } from '../logging/logger.js';
import { DATA_DIRS } from '../domain/paths.js';
import { isValidUid } from '../domain/uid.js';
import {
  expectedInstances,
  referencedMppsUids,
  type ExpectedSeries,
  type MppsStatus,
  type MppsSummary,
} from '../domain/mpps.js';
import {
  isRequestFileName,
  parseRequestFile,
  requestFileContent,
  requestFileName,
  REQUEST_FILE_LIMIT,
  type ScanRequestSpec,
} from '../domain/scanRequest.js';
import type { IngestedInstance } from './ingest.js';

/** How long the set of active studies is trusted before it is read again (see `isActiveStudy`). */
const ACTIVE_STUDIES_TTL_MS = 5_000;

export interface ScanSeriesView {
  seriesInstanceUid: string;
  seriesNumber: number | null;
  modality: string | null;
  seriesDescription: string | null;
  /** SOP Instance UIDs the MPPS names for this series (0 when it names none). */
  expected: number;
  /** Instances of this series stored by scannode. */
  received: number;
  /** Of the expected ones, how many are stored. */
  receivedExpected: number;
}

export interface ScanView extends ScanRow {
  mppsStatus: string | null;
  mpps: Array<Pick<MppsStepRow, 'sopInstanceUid' | 'status' | 'startDate' | 'startTime' | 'endDate' | 'endTime'>>;
  series: ScanSeriesView[];
}

export interface ScanRequestsOptions {
  /** Safety-net rescan of active-scans/ (fs.watch misses events on some file systems). */
  rescanMs?: number;
  /** A file modified more recently than this may still be being written: look again later. */
  settleMs?: number;
}

/** Writes a file so that readers see the old or the new content, never a mix: temp file, fsync, rename, dir fsync. */
export function writeFileAtomic(file: string, data: string | Buffer): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}

/**
 * A request file's bytes, or why it is refused: opened without following a symbolic link and without blocking (a
 * FIFO swapped in after the lstat), checked to be a regular file within the size limit on the open descriptor, and
 * only then read. A 10 GB file is never read.
 */
function readRequestFile(file: string): Buffer | string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    return `cannot be opened (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return 'not a regular file';
    if (st.size > REQUEST_FILE_LIMIT) return `larger than ${REQUEST_FILE_LIMIT} bytes (${st.size}); not read`;
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const r = fs.readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
    }
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Scan requests: rows in `scans` and their files in `active-scans/`, kept in step both ways. The database is the
 * record; the files are the admin's view. At start-up a file without a row gets a row and an active row without a
 * file gets its file back; while running, a new file becomes a request, a file removed by someone cancels its
 * request, and a file that cannot be read goes to `problem/` with a `.reason.txt`. Everything that changes rows or
 * files runs one at a time.
 */
export class ScanRequests {
  readonly dir: string;
  private readonly problemDir: string;
  private chain: Promise<unknown> = Promise.resolve();
  private watcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly pending = new Map<string, NodeJS.Timeout>();
  /** Request files known to be on disk while running: when one disappears, someone removed it. */
  private readonly seen = new Set<string>();
  /** Active scans created by an MPPS whose StudyInstanceUID is not known yet. */
  private readonly unresolved = new Set<string>();
  private running = false;
  /** Request files read and matched to their active row: name -> dev:ino:size:mtime when read. */
  private readonly unchanged = new Map<string, string>();
  private readonly rescanMs: number;
  private readonly settleMs: number;

  constructor(
    private readonly db: Database,
    readonly dataDir: string,
    private readonly log: Logger,
    opts: ScanRequestsOptions = {},
  ) {
    this.dir = path.join(dataDir, DATA_DIRS.activeScans);
    this.problemDir = path.join(dataDir, DATA_DIRS.problem);
    this.rescanMs = opts.rescanMs ?? 10_000;
    this.settleMs = opts.settleMs ?? 300;
  }

  private get scans() {
    return this.db.source.getRepository(this.db.entities.Scan);
  }

  /**
   * Study UIDs of the active scans, loaded once and kept for a few seconds: every received image asks, and one query
   * per image cost more than the rest of storing it. A study becomes active only here (a new request, or one resolved
   * to its study), and both drop the cache; a scan that ended stays in it for at most ACTIVE_STUDIES_TTL_MS, which only
   * costs a spare (debounced) reconcile trigger.
   */
  private activeStudies: { at: number; studies: Promise<Set<string>> } | undefined;

  async isActiveStudy(studyInstanceUid: string): Promise<boolean> {
    const now = Date.now();
    if (!this.activeStudies || now - this.activeStudies.at > ACTIVE_STUDIES_TTL_MS) {
      const studies = this.scans
        .find({ where: { state: 'active' }, select: { studyInstanceUid: true } })
        .then((rows) => new Set(rows.flatMap((r) => (r.studyInstanceUid ? [r.studyInstanceUid] : []))));
      const entry = { at: now, studies };
      this.activeStudies = entry;
      studies.catch(() => {
        if (this.activeStudies === entry) this.activeStudies = undefined;
      });
    }
    return (await this.activeStudies.studies).has(studyInstanceUid);
  }

  private activeStudiesChanged(): void {
    this.activeStudies = undefined;
  }

  /** Runs fn after everything queued before it; a failure is logged and rethrown to the caller only. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  // -- life cycle ------------------------------------------------------------------------------------------------

  async start(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    fs.mkdirSync(this.problemDir, { recursive: true });
    const unresolved = await this.scans.find({ where: { state: 'active', studyInstanceUid: IsNull() } });
    for (const s of unresolved) if (s.mppsUid) this.unresolved.add(s.id);
    this.running = true;
    await this.serial(() => this.rescan(true));
    this.watch();
    this.timer = setInterval(() => {
      this.serial(() => this.rescan(false)).catch((err: unknown) =>
        this.log.error('active-scans rescan failed', { err: String(err) }),
      );
    }, this.rescanMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer) clearInterval(this.timer);
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
    await this.chain;
  }

  private watch(): void {
    try {
      this.watcher = fs.watch(this.dir, (_event, filename) => {
        if (filename) this.schedule(filename.toString(), 50);
      });
      this.watcher.on('error', (err) => {
        this.log.warn('watching active-scans/ failed; the periodic rescan goes on', { err: String(err) });
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.log.warn('cannot watch active-scans/; relying on the periodic rescan', { err: String(err) });
    }
  }

  private schedule(name: string, delayMs: number): void {
    if (!this.running || name.startsWith('.')) return;
    const prev = this.pending.get(name);
    if (prev) clearTimeout(prev);
    const t = setTimeout(() => {
      this.pending.delete(name);
      this.serial(() => this.checkName(name)).catch((err: unknown) =>
        this.log.error('cannot process request file', { file: name, err: String(err) }),
      );
    }, delayMs);
    t.unref();
    this.pending.set(name, t);
  }

  // -- the file side ---------------------------------------------------------------------------------------------

  /** One pass over active-scans/ and the active rows. `startup`: a row without its file gets the file back. */
  private async rescan(startup: boolean): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    if (this.running && !this.watcher && !startup) this.watch();
    // One bad file or row must not stop the pass (nor, at start-up, the node).
    const guard = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        this.log.error('scan request sync failed', { what, err: String(err) });
      }
    };
    for (const name of fs.readdirSync(this.dir)) {
      if (name.startsWith('.')) continue;
      await guard(name, () => this.processFile(name));
    }
    const rows = await this.scans.find({ where: { state: 'active' } });
    for (const row of rows) {
      if (!row.fileName || fs.existsSync(path.join(this.dir, row.fileName))) continue;
      await guard(row.fileName, () =>
        !startup && this.seen.has(row.fileName!)
          ? this.cancel(row, 'request file removed from active-scans/')
          : this.writeRequestFile(row),
      );
    }
  }

  private async checkName(name: string): Promise<void> {
    if (fs.existsSync(path.join(this.dir, name))) {
      await this.processFile(name);
      return;
    }
    if (!this.seen.has(name)) return;
    const row = await this.scans.findOne({ where: { state: 'active', fileName: name } });
    if (row) await this.cancel(row, 'request file removed from active-scans/');
    else this.seen.delete(name);
  }

  private async processFile(name: string): Promise<void> {
    const file = path.join(this.dir, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(file);
    } catch {
      return;
    }
    if (!st.isFile()) {
      this.toProblem(name, 'not a regular file');
      return;
    }
    if (!isRequestFileName(name)) {
      this.toProblem(name, `file name "${name}" is not accepted (letters, digits, . _ - only)`);
      return;
    }
    if (Date.now() - st.mtimeMs < this.settleMs) {
      this.schedule(name, this.settleMs);
      return;
    }
    // A file already taken and not changed since (same inode, size and mtime) is not read again on every rescan.
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    if (this.unchanged.get(name) === key) return;
    const content = readRequestFile(file);
    if (typeof content === 'string') {
      this.toProblem(name, content);
      return;
    }
    const parsed = parseRequestFile(name, content);
    const row = await this.scans.findOne({ where: { state: 'active', fileName: name } });
    if (row) {
      this.seen.add(name);
      if (parsed.ok) this.unchanged.set(name, key);
      if (!parsed.ok) {
        this.toProblem(name, parsed.reason);
        await this.writeRequestFile(row);
      }
      return;
    }
    if (!parsed.ok) {
      this.toProblem(name, parsed.reason);
      return;
    }
    const { scan } = await this.addNow(parsed.spec, 'file');
    if (scan.fileName !== name) {
      // The request lives under its canonical name (e.g. `<uid>.json` for a FIONA-style `<uid>`).
      fs.rmSync(file, { force: true });
    }
  }

  private toProblem(name: string, reason: string): void {
    this.unchanged.delete(name);
    fs.mkdirSync(this.problemDir, { recursive: true });
    let dest = path.join(this.problemDir, name);
    if (fs.existsSync(dest)) dest = path.join(this.problemDir, `${name}.${Date.now()}`);
    try {
      fs.renameSync(path.join(this.dir, name), dest);
      fs.writeFileSync(`${dest}.reason.txt`, `${path.join(DATA_DIRS.activeScans, name)}: ${reason}\n`);
      this.log.warn('invalid scan request file moved to problem/', {
        file: name,
        to: path.relative(this.dataDir, dest),
        reason,
      });
    } catch (err) {
      this.log.error('cannot move invalid request file to problem/', { file: name, err: String(err) });
    }
  }

  private async writeRequestFile(row: ScanRow): Promise<void> {
    if (!row.fileName || row.state !== 'active') return;
    let mppsStatus: string | null = null;
    if (row.mppsUid) {
      const step = await this.db.source
        .getRepository(this.db.entities.MppsStep)
        .findOne({ where: { sopInstanceUid: row.mppsUid }, select: { status: true } });
      mppsStatus = step?.status ?? null;
    }
    fs.mkdirSync(this.dir, { recursive: true });
    writeFileAtomic(
      path.join(this.dir, row.fileName),
      requestFileContent({
        studyInstanceUid: row.studyInstanceUid,
        accessionNumber: row.accessionNumber,
        patientId: row.patientId,
        studyDate: row.studyDate,
        mppsSopInstanceUid: row.mppsUid,
        state: row.state,
        source: row.source,
        requestedAt: row.requestedAt,
        mppsStatus,
      }),
    );
    this.seen.add(row.fileName);
  }

  private removeRequestFile(name: string | null): void {
    if (!name) return;
    this.unchanged.delete(name);
    this.seen.delete(name);
    fs.rmSync(path.join(this.dir, name), { force: true });
  }

  // -- the request side ------------------------------------------------------------------------------------------

  /** Adds a request (or finds the active one that already asks for the same thing) and writes its file. */
  add(spec: ScanRequestSpec, source: ScanSource): Promise<{ scan: ScanRow; created: boolean }> {
    return this.serial(() => this.addNow(spec, source));
  }

  private async findActive(spec: ScanRequestSpec): Promise<ScanRow | null> {
    if (spec.studyInstanceUid)
      return this.scans.findOne({ where: { state: 'active', studyInstanceUid: spec.studyInstanceUid } });
    const unresolved = { state: 'active' as const, studyInstanceUid: IsNull() };
    if (spec.mppsSopInstanceUid)
      return this.scans.findOne({ where: { ...unresolved, mppsUid: spec.mppsSopInstanceUid } });
    if (spec.accessionNumber)
      return this.scans.findOne({ where: { ...unresolved, accessionNumber: spec.accessionNumber } });
    return this.scans.findOne({
      where: {
        ...unresolved,
        accessionNumber: IsNull(),
        patientId: spec.patientId ?? IsNull(),
        studyDate: spec.studyDate ?? IsNull(),
      },
    });
  }

  private async addNow(spec: ScanRequestSpec, source: ScanSource): Promise<{ scan: ScanRow; created: boolean }> {
    const existing = await this.findActive(spec);
    if (existing) {
      if (existing.fileName) this.seen.add(existing.fileName);
      if (existing.fileName && !fs.existsSync(path.join(this.dir, existing.fileName)))
        await this.writeRequestFile(existing);
      return { scan: existing, created: false };
    }
    const now = new Date();
    const row: ScanRow = {
      id: randomUUID(),
      studyInstanceUid: spec.studyInstanceUid,
      accessionNumber: spec.accessionNumber,
      patientId: spec.patientId,
      studyDate: spec.studyDate,
      mppsUid: spec.mppsSopInstanceUid,
      state: 'active',
      source,
      fileName: requestFileName(spec),
      reason: null,
      requestedAt: now,
      updatedAt: now,
      completedAt: null,
    };
    await this.scans.insert(row);
    this.activeStudiesChanged();
    await this.writeRequestFile(row);
    if (!row.studyInstanceUid && row.mppsUid) this.unresolved.add(row.id);
    this.log.info('scan requested', {
      scan: row.id,
      study: row.studyInstanceUid ?? undefined,
      source,
      file: row.fileName,
      state: row.state,
    });
    this.log.debug('scan request details', {
      scan: row.id,
      accessionNumber: row.accessionNumber,
      patientId: row.patientId,
      studyDate: row.studyDate,
    });
    return { scan: row, created: true };
  }

  private async cancel(row: ScanRow, reason: string): Promise<void> {
    const now = new Date();
    await this.scans.update({ id: row.id }, { state: 'cancelled', reason, updatedAt: now });
    this.unresolved.delete(row.id);
    if (row.fileName) this.seen.delete(row.fileName);
    this.log.info('scan cancelled', { scan: row.id, study: row.studyInstanceUid ?? undefined, reason });
  }

  /**
   * Called for every accepted N-CREATE / N-SET: finds or makes the step's scan, records the instances it expects
   * and refreshes the request file. Returns the scan id.
   */
  linkMpps(input: {
    mppsUid: string;
    scanId: string | null;
    summary: MppsSummary;
    expected: ExpectedSeries[];
  }): Promise<string> {
    return this.serial(() => this.linkMppsNow(input));
  }

  private async linkMppsNow(input: {
    mppsUid: string;
    scanId: string | null;
    summary: MppsSummary;
    expected: ExpectedSeries[];
  }): Promise<string> {
    const { mppsUid, summary } = input;
    const study = summary.studyInstanceUids[0] ?? null;
    let scan = input.scanId ? await this.scans.findOne({ where: { id: input.scanId } }) : null;
    if (!scan) {
      scan = (
        await this.addNow(
          {
            studyInstanceUid: study,
            accessionNumber: study ? (summary.accessionNumber?.slice(0, 64) ?? null) : null,
            patientId: study ? (summary.patientId?.slice(0, 64) ?? null) : null,
            studyDate: null,
            mppsSopInstanceUid: mppsUid,
          },
          'mpps',
        )
      ).scan;
      if (!scan.accessionNumber && summary.accessionNumber) scan.accessionNumber = summary.accessionNumber;
      if (!scan.patientId && summary.patientId) scan.patientId = summary.patientId;
    }
    scan.mppsUid = mppsUid;
    scan.updatedAt = new Date();
    await this.scans.update(
      { id: scan.id },
      {
        mppsUid,
        updatedAt: scan.updatedAt,
        accessionNumber: scan.accessionNumber?.slice(0, 64) ?? null,
        patientId: scan.patientId?.slice(0, 64) ?? null,
      },
    );
    await this.db.source
      .getRepository(this.db.entities.MppsStep)
      .update({ sopInstanceUid: mppsUid }, { scanId: scan.id });
    const rows = input.expected.flatMap((s) =>
      s.instances.map((i) => ({
        scanId: scan.id,
        sopInstanceUid: i.sopInstanceUid,
        seriesInstanceUid: i.seriesInstanceUid,
        sopClassUid: i.sopClassUid ?? null,
        mppsUid,
      })),
    );
    for (let i = 0; i < rows.length; i += 200) {
      await this.db.source
        .createQueryBuilder()
        .insert()
        .into(this.db.entities.ScanExpected)
        .values(rows.slice(i, i + 200))
        .orIgnore()
        .execute();
    }
    let current: ScanRow = scan;
    if (!current.studyInstanceUid && study) current = await this.resolve(current, study, 'MPPS');
    else if (!current.studyInstanceUid) {
      const found = await this.studyFromReceivedImages(current.id, mppsUid);
      if (found) current = await this.resolve(current, found, 'received images');
    }
    await this.writeRequestFile(current);
    return current.id;
  }

  /** An MPPS without a StudyInstanceUID: images already stored that it names, or that name it, tell the study. */
  private async studyFromReceivedImages(scanId: string, mppsUid: string): Promise<string | undefined> {
    const { Instance, ScanExpected } = this.db.entities;
    const byExpected = await this.db.source
      .getRepository(Instance)
      .createQueryBuilder('i')
      .innerJoin(ScanExpected.options.name, 'e', 'e.sopInstanceUid = i.sopInstanceUid')
      .select('i.studyInstanceUid', 'study')
      .where('e.scanId = :scanId', { scanId })
      .limit(1)
      .getRawOne<{ study: string }>();
    if (byExpected?.study) return byExpected.study;
    const candidates = await this.db.source
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

  /** The study of an unresolved MPPS scan became known: rename its file, or fold it into the study's request. */
  private async resolve(scan: ScanRow, study: string, how: string): Promise<ScanRow> {
    if (!isValidUid(study)) return scan;
    this.unresolved.delete(scan.id);
    const { MppsStep, ScanExpected } = this.db.entities;
    const other = await this.scans.findOne({ where: { state: 'active', studyInstanceUid: study } });
    if (other && other.id !== scan.id) {
      const expected = await this.db.source.getRepository(ScanExpected).find({ where: { scanId: scan.id } });
      if (expected.length) {
        await this.db.source
          .createQueryBuilder()
          .insert()
          .into(ScanExpected)
          .values(expected.map((e) => ({ ...e, scanId: other.id })))
          .orIgnore()
          .execute();
      }
      await this.db.source.getRepository(ScanExpected).delete({ scanId: scan.id });
      await this.db.source
        .getRepository(MppsStep)
        .update({ scanId: scan.id }, { scanId: other.id, studyInstanceUid: study });
      await this.scans.update({ id: other.id }, { mppsUid: scan.mppsUid ?? other.mppsUid, updatedAt: new Date() });
      await this.scans.delete({ id: scan.id });
      this.removeRequestFile(scan.fileName);
      this.log.info('scan request merged into the request for its study', {
        scan: scan.id,
        into: other.id,
        study,
        how,
      });
      const merged = (await this.scans.findOne({ where: { id: other.id } }))!;
      await this.writeRequestFile(merged);
      return merged;
    }
    const fileName = `${study}.json`;
    const oldName = scan.fileName;
    const updated: ScanRow = { ...scan, studyInstanceUid: study, fileName, updatedAt: new Date() };
    await this.scans.update({ id: scan.id }, { studyInstanceUid: study, fileName, updatedAt: updated.updatedAt });
    this.activeStudiesChanged();
    await this.db.source.getRepository(MppsStep).update({ scanId: scan.id }, { studyInstanceUid: study });
    await this.writeRequestFile(updated);
    if (oldName && oldName !== fileName) this.removeRequestFile(oldName);
    this.log.info('scan request resolved to its study', { scan: scan.id, study, how, file: fileName });
    return updated;
  }

  /** Ingest's 'instance' event: an image may name the MPPS of a scan whose study is not known yet. */
  async onInstance(inst: IngestedInstance): Promise<void> {
    if (this.unresolved.size === 0 || inst.duplicate) return;
    try {
      await this.serial(async () => {
        const ids = [...this.unresolved];
        if (!ids.length) return;
        const { Instance, ScanExpected } = this.db.entities;
        const hit = await this.db.source
          .getRepository(ScanExpected)
          .findOne({ where: { scanId: In(ids), sopInstanceUid: inst.sopInstanceUid } });
        let scanId = hit?.scanId;
        if (!scanId) {
          const row = await this.db.source
            .getRepository(Instance)
            .findOne({ where: { sopInstanceUid: inst.sopInstanceUid }, select: { header: true } });
          const refs = row ? referencedMppsUids(JSON.parse(row.header) as Record<string, unknown>) : [];
          if (!refs.length) return;
          const scan = await this.scans.findOne({ where: { id: In(ids), mppsUid: In(refs) } });
          scanId = scan?.id;
        }
        if (!scanId) return;
        const scan = await this.scans.findOne({ where: { id: scanId } });
        if (scan && scan.state === 'active' && !scan.studyInstanceUid) {
          await this.resolve(scan, inst.studyInstanceUid, 'received images');
        }
      });
    } catch (err) {
      this.log.error('cannot link an image to its scan request', { sop: inst.sopInstanceUid, err: String(err) });
    }
  }

  // -- for completion and the reconciler -------------------------------------------------------------------------

  /** Runs fn in turn with every other change to requests (so no watcher event sees a half-done change). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.serial(fn);
  }

  /** Inside `exclusive`: removes a request's file from active-scans/ without that counting as a cancel. */
  releaseFile(name: string | null): void {
    this.removeRequestFile(name);
  }

  /** The reconciler found the study of a request that named an accession number or a patient. */
  resolveStudy(scanId: string, study: string, how: string): Promise<ScanRow | undefined> {
    return this.serial(async () => {
      const scan = await this.scans.findOne({ where: { id: scanId } });
      if (!scan || scan.state !== 'active' || scan.studyInstanceUid) return scan ?? undefined;
      return this.resolve(scan, study, how);
    });
  }

  // -- queries for the CLI and the API ---------------------------------------------------------------------------

  async list(state?: ScanState): Promise<ScanView[]> {
    const rows = await this.scans.find({ where: state ? { state } : {}, order: { requestedAt: 'ASC' } });
    return this.views(rows);
  }

  /**
   * One page of requests, newest first for ended ones and oldest first for active ones (the order people read them
   * in), with the total for paging.
   */
  async page(opts: {
    state?: ScanState;
    limit: number;
    offset: number;
  }): Promise<{ total: number; scans: ScanView[] }> {
    const [rows, total] = await this.scans.findAndCount({
      where: opts.state ? { state: opts.state } : {},
      order: opts.state === 'active' ? { requestedAt: 'ASC', id: 'ASC' } : { updatedAt: 'DESC', id: 'ASC' },
      take: opts.limit,
      skip: opts.offset,
    });
    return { total, scans: await this.views(rows) };
  }

  /** A scan by StudyInstanceUID (the active one first, else the newest) or by its id. */
  async describe(key: string): Promise<ScanView | undefined> {
    const rows = await this.scans.find({
      where: isValidUid(key) ? { studyInstanceUid: key } : { id: key },
      order: { requestedAt: 'DESC' },
    });
    const row = rows.find((r) => r.state === 'active') ?? rows[0];
    return row ? (await this.views([row]))[0] : undefined;
  }

  /**
   * Per-series progress of many scans with a fixed number of queries (the status page shows hundreds of series):
   * expected (MPPS references) and received counts grouped by series, the series rows, and the MPPS steps.
   */
  async views(scans: ScanRow[]): Promise<ScanView[]> {
    if (!scans.length) return [];
    const { ScanExpected, Instance, Series, MppsStep } = this.db.entities;
    const ids = scans.map((s) => s.id);
    const studies = [...new Set(scans.map((s) => s.studyInstanceUid).filter((u): u is string => !!u))];
    const key = (a: string, b: string) => `${a}\u0000${b}`;
    const count = (rows: Array<{ k1: string; k2: string; n: string | number }>) =>
      new Map(rows.map((r) => [key(r.k1, r.k2), Number(r.n)]));
    const source = this.db.source;
    const [expected, receivedExpected, received, steps] = await Promise.all([
      source
        .getRepository(ScanExpected)
        .createQueryBuilder('e')
        .select('e.scanId', 'k1')
        .addSelect('e.seriesInstanceUid', 'k2')
        .addSelect('COUNT(*)', 'n')
        .where('e.scanId IN (:...ids)', { ids })
        .groupBy('e.scanId')
        .addGroupBy('e.seriesInstanceUid')
        .getRawMany()
        .then(count),
      source
        .getRepository(ScanExpected)
        .createQueryBuilder('e')
        .innerJoin(Instance.options.name, 'i', 'i.sopInstanceUid = e.sopInstanceUid')
        .select('e.scanId', 'k1')
        .addSelect('e.seriesInstanceUid', 'k2')
        .addSelect('COUNT(*)', 'n')
        .where('e.scanId IN (:...ids)', { ids })
        .groupBy('e.scanId')
        .addGroupBy('e.seriesInstanceUid')
        .getRawMany()
        .then(count),
      studies.length
        ? source
            .getRepository(Instance)
            .createQueryBuilder('i')
            .select('i.studyInstanceUid', 'k1')
            .addSelect('i.seriesInstanceUid', 'k2')
            .addSelect('COUNT(*)', 'n')
            .where('i.studyInstanceUid IN (:...studies)', { studies })
            .groupBy('i.studyInstanceUid')
            .addGroupBy('i.seriesInstanceUid')
            .getRawMany()
            .then(count)
        : new Map<string, number>(),
      source.getRepository(MppsStep).find({ where: { scanId: In(ids) }, order: { createdAt: 'ASC' } }),
    ]);
    const seriesUids = new Set<string>();
    for (const k of [...expected.keys(), ...received.keys()]) seriesUids.add(k.split('\u0000')[1]!);
    const meta = seriesUids.size
      ? await source.getRepository(Series).find({ where: { seriesInstanceUid: In([...seriesUids]) } })
      : [];
    const metaBy = new Map(meta.map((m) => [m.seriesInstanceUid, m]));
    // Series not received yet are described by the MPPS that names them.
    const fromMpps = new Map<string, { description: string | null; modality: string | null }>();
    const stepsBy = new Map<string, MppsStepRow[]>();
    for (const step of steps) {
      if (!step.scanId) continue;
      stepsBy.set(step.scanId, [...(stepsBy.get(step.scanId) ?? []), step]);
      const ds = JSON.parse(step.dataset) as Record<string, unknown>;
      const modality = typeof ds.Modality === 'string' ? ds.Modality : null;
      for (const ser of expectedInstances(ds).series) {
        fromMpps.set(ser.seriesInstanceUid, { description: ser.seriesDescription ?? null, modality });
      }
    }
    const seriesOf = (prefix: string, m: Map<string, number>) =>
      [...m.keys()].filter((k) => k.startsWith(`${prefix}\u0000`)).map((k) => k.split('\u0000')[1]!);
    return scans.map((scan) => {
      const uids = new Set([
        ...seriesOf(scan.id, expected),
        ...(scan.studyInstanceUid ? seriesOf(scan.studyInstanceUid, received) : []),
      ]);
      const series: ScanSeriesView[] = [...uids].map((uid) => {
        const m = metaBy.get(uid);
        return {
          seriesInstanceUid: uid,
          seriesNumber: m?.seriesNumber ?? null,
          modality: m?.modality ?? fromMpps.get(uid)?.modality ?? null,
          seriesDescription: m?.seriesDescription ?? fromMpps.get(uid)?.description ?? null,
          expected: expected.get(key(scan.id, uid)) ?? 0,
          received: scan.studyInstanceUid ? (received.get(key(scan.studyInstanceUid, uid)) ?? 0) : 0,
          receivedExpected: receivedExpected.get(key(scan.id, uid)) ?? 0,
        };
      });
      series.sort(
        (a, b) =>
          (a.seriesNumber ?? 1e9) - (b.seriesNumber ?? 1e9) || a.seriesInstanceUid.localeCompare(b.seriesInstanceUid),
      );
      const own = stepsBy.get(scan.id) ?? [];
      const current = own.find((s) => s.sopInstanceUid === scan.mppsUid) ?? own[own.length - 1];
      return {
        ...scan,
        mppsStatus: (current?.status as MppsStatus | undefined) ?? null,
        mpps: own.map((s) => ({
          sopInstanceUid: s.sopInstanceUid,
          status: s.status,
          startDate: s.startDate,
          startTime: s.startTime,
          endDate: s.endDate,
          endTime: s.endTime,
        })),
        series,
      };
    });
  }
}
