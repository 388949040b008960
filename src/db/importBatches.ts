/**
 * Owns the bookkeeping of import batches: their rows and states, the counters of a running attempt (and what it
 * carries into a retry), the problem list, and the queries the API, the status page, the inbox and the retry loop ask.
 */
import { randomUUID } from 'node:crypto';
import { In, IsNull, LessThanOrEqual, Not } from 'typeorm';
import type { Database } from './dataSource.js';
import { fitRow, widthOf } from './fit.js';
import type {
  ImportBatchRow,
  ImportProblemKind,
  ImportProblemRow,
  ImportSource,
  ImportState,
} from './importEntities.js';
import { COUNT_KEYS, zeroCounts, type ImportCounts } from '../domain/importRules.js';

export interface ImportStatus extends ImportBatchRow {
  problemList: Array<{ path: string; reason: string; kind: ImportProblemKind }>;
}

export interface NewBatch {
  name: string;
  source: ImportSource;
  path: string;
  keepSources: boolean;
  patientId?: string;
  studyLabel?: string;
}

/** Whether a batch is still under way (in this process or another). */
export function isActive(state: ImportState): boolean {
  return state === 'queued' || state === 'running';
}

/**
 * The counters of one attempt. What the row shows (`c`) starts from what earlier attempts took out of the folder
 * (`carried`); `left` tallies the same for the next attempt: files whose source is gone (archived and removed, or
 * moved to problem/). Everything else is still in the folder and is counted again by a retry, so nothing is counted
 * twice. When sources are kept, nothing leaves and a retry counts the whole tree again from zero.
 */
export class Tally {
  readonly c: ImportCounts;
  readonly left: ImportCounts;
  private counted = 0;
  private seen = 0;

  constructor(private readonly carried: ImportCounts) {
    this.c = { ...carried, errors: 0 };
    this.left = { ...carried, errors: 0 };
  }

  /** The first pass counted `n` entries. */
  found(n: number): void {
    this.counted = n;
    this.c.filesFound = this.carried.filesFound + n;
  }

  /** An entry was taken up (whatever becomes of it). */
  entry(): void {
    this.seen++;
    if (this.seen > this.counted) this.c.filesFound = this.carried.filesFound + this.seen;
  }

  /** It was gone before it could be read (taken by someone else): it was never there for this batch. */
  vanished(): void {
    this.seen--;
    this.counted--;
    this.c.filesFound--;
  }

  read(size: number, duplicate: boolean): void {
    this.c.filesRead++;
    this.c.bytes += size;
    if (duplicate) this.c.duplicates++;
  }

  /** A file read and stored that did not make it into the archive: it stays, for a retry. */
  unread(size: number, duplicate: boolean): void {
    this.c.filesRead--;
    this.c.bytes -= size;
    if (duplicate) this.c.duplicates--;
    this.c.errors++;
  }

  archived(size: number, duplicate: boolean, sourceGone: boolean): void {
    this.c.archived++;
    if (!sourceGone) return;
    this.left.filesFound++;
    this.left.filesRead++;
    this.left.archived++;
    this.left.bytes += size;
    if (duplicate) this.left.duplicates++;
  }

  problem(moved: boolean): void {
    this.c.problems++;
    if (!moved) return;
    this.left.filesFound++;
    this.left.problems++;
  }

  error(): void {
    this.c.errors++;
  }

  /** The walk went through the whole tree: filesFound is what it met, not the first pass's estimate. */
  walkedAll(): void {
    this.c.filesFound = this.carried.filesFound + this.seen;
  }
}

export class ImportBatches {
  constructor(
    private readonly db: Database,
    /** The node whose batches these are (cluster.nodeId); undefined for the command line. */
    private readonly node?: string,
  ) {}

  private get rows() {
    return this.db.source.getRepository(this.db.entities.ImportBatch);
  }

  private get problems() {
    return this.db.source.getRepository(this.db.entities.ImportProblem);
  }

  async create(b: NewBatch): Promise<ImportBatchRow> {
    const row: ImportBatchRow = {
      id: randomUUID(),
      name: b.name,
      source: b.source,
      path: b.path,
      state: 'queued',
      keepSources: b.keepSources,
      patientId: b.patientId ?? null,
      studyLabel: b.studyLabel ?? null,
      ...zeroCounts(),
      startedAt: new Date(),
      endedAt: null,
      message: null,
      attempts: 0,
      nextAttemptAt: null,
      carried: null,
      node: this.node ?? null,
    };
    const fitted = fitRow(this.db.entities.ImportBatch, row);
    await this.rows.insert(fitted);
    return fitted;
  }

  get(id: string): Promise<ImportBatchRow | null> {
    return this.rows.findOneBy({ id });
  }

  async update(id: string, patch: Partial<ImportBatchRow>): Promise<void> {
    await this.rows.update({ id }, fitRow(this.db.entities.ImportBatch, patch));
  }

  /**
   * A new attempt starts: the problems of entries still in the folder are listed again by it (those that left stay
   * listed), and the row says running.
   */
  async begin(batch: ImportBatchRow, attempt: number, counts: ImportCounts): Promise<void> {
    await this.problems.delete({ batchId: batch.id, kind: In(['listed', 'error']) });
    await this.rows.update(
      { id: batch.id },
      {
        ...counts,
        state: 'running',
        attempts: attempt,
        endedAt: null,
        nextAttemptAt: null,
        message: null,
        ...(this.node ? { node: this.node } : {}),
      },
    );
  }

  /**
   * Takes a due retrying batch for this node: false when another node took it first (several nodes run the retry
   * loop on one database; the conditional UPDATE lets exactly one have it).
   */
  async claim(id: string, now: Date): Promise<boolean> {
    const r = await this.rows.update(
      { id, state: 'retrying', nextAttemptAt: LessThanOrEqual(now) },
      { nextAttemptAt: null, ...(this.node ? { node: this.node } : {}) },
    );
    return (r.affected ?? 0) > 0;
  }

  /** The batches a dead node left queued or running: tried again now by whoever takes them (inbox and REST only). */
  async resumeDeadNode(node: string, now: Date): Promise<number> {
    const r = await this.rows.update(
      { state: In(['queued', 'running']), source: Not('cli'), node },
      { state: 'retrying', nextAttemptAt: now, message: `interrupted: node ${node} died; resumes` },
    );
    return (r.affected ?? 0) + (await this.claimedDueNow(node, now));
  }

  /** Batches of `node` (null: of no node) claimed for a retry but not begun when it stopped or died: due now. */
  private async claimedDueNow(node: string | null, now: Date): Promise<number> {
    const r = await this.rows.update(
      { state: 'retrying', source: Not('cli'), nextAttemptAt: IsNull(), node: node === null ? IsNull() : node },
      { nextAttemptAt: now },
    );
    return r.affected ?? 0;
  }

  async saveCounts(id: string, c: ImportCounts): Promise<void> {
    const patch: Partial<ImportCounts> = {};
    for (const k of COUNT_KEYS) patch[k] = c[k];
    await this.rows.update({ id }, patch);
  }

  async addProblem(batchId: string, path: string, reason: string, kind: ImportProblemKind): Promise<void> {
    const row: ImportProblemRow = { batchId, path, reason, kind };
    await this.problems.insert(fitRow(this.db.entities.ImportProblem, row));
  }

  async status(id: string, problemLimit = 1000): Promise<ImportStatus | null> {
    const batch = await this.get(id);
    if (!batch) return null;
    const problems = await this.problems.find({ where: { batchId: id }, order: { id: 'ASC' }, take: problemLimit });
    return { ...batch, problemList: problems.map((p) => ({ path: p.path, reason: p.reason, kind: p.kind })) };
  }

  /** Batches newest first, optionally of one state or source. */
  async list(q: {
    state?: ImportState;
    source?: ImportSource;
    limit: number;
    offset: number;
  }): Promise<{ total: number; batches: ImportBatchRow[] }> {
    const where = { ...(q.state && { state: q.state }), ...(q.source && { source: q.source }) };
    const [batches, total] = await this.rows.findAndCount({
      where,
      order: { startedAt: 'DESC', id: 'ASC' },
      take: q.limit,
      skip: q.offset,
    });
    return { total, batches };
  }

  /** The newest batch of a path, whatever its source (what decides whether the inbox takes the path again). */
  latestFor(path: string): Promise<ImportBatchRow | null> {
    return this.rows.findOne({
      where: { path: path.slice(0, widthOf(this.db.entities.ImportBatch, 'path')) },
      order: { startedAt: 'DESC', id: 'ASC' },
    });
  }

  /** Retrying batches whose next attempt is due (CLI batches are retried by an operator only). */
  due(now: Date): Promise<ImportBatchRow[]> {
    return this.rows.find({
      where: { state: 'retrying', nextAttemptAt: LessThanOrEqual(now), source: Not('cli') },
      order: { nextAttemptAt: 'ASC' },
      take: 100,
    });
  }

  /** When the next retrying batch is due, if any. */
  async nextDue(): Promise<Date | null> {
    const row = await this.rows.findOne({
      // A batch being taken (claimed, not begun yet) has no next attempt.
      where: { state: 'retrying', source: Not('cli'), nextAttemptAt: Not(IsNull()) },
      order: { nextAttemptAt: 'ASC' },
      select: { id: true, nextAttemptAt: true },
    });
    return row?.nextAttemptAt ?? null;
  }

  /**
   * Start-up: batches left queued or running by a process that stopped without ending them (a crash). Inbox and REST
   * batches resume at once (their sources are still where they were: removed only once archived); a CLI batch waits
   * for `scannode import --retry`. (A batch stopped cleanly was already left retrying, or interrupted for the CLI.)
   */
  async interruptedAtStart(now: Date): Promise<{ resumed: number; interrupted: number }> {
    const active = In(['queued', 'running']);
    // This node's own, and those of no node (from before nodes were recorded): other nodes' are theirs.
    let resumed = 0;
    for (const node of [this.node ?? null, null].filter((n, i, a) => a.indexOf(n) === i)) {
      const r = await this.rows.update(
        { state: active, source: Not('cli'), node: node === null ? IsNull() : node },
        { state: 'retrying', nextAttemptAt: now, endedAt: new Date(), message: 'interrupted: resumes' },
      );
      resumed += (r.affected ?? 0) + (await this.claimedDueNow(node, now));
    }
    const cli = await this.rows.update(
      { state: active, source: 'cli' },
      { state: 'interrupted', endedAt: new Date(), message: 'interrupted: resume with scannode import --retry' },
    );
    return { resumed, interrupted: cli.affected ?? 0 };
  }
}
