import fs from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Database } from '../db/dataSource.js';
import { retrieveOutcome, type RetrieveAttemptRow } from '../db/retrieveEntities.js';
import { statusLabel } from '../domain/statusTable.js';
import { SCAN_STATES } from '../db/scanEntities.js';
import { scanCountsByState } from '../db/scanStore.js';
import { instanceCountsByState } from '../db/instanceStore.js';
import type { AssociationInfo, AssociationSummary } from '../dimse/types.js';
import type { Logger } from '../logging/logger.js';

export interface MetricsOptions {
  /** Source of the scans / spool / archive gauges; without it they stay 0 (unit tests). */
  db?: Database;
  /** The file system holding it is the one of scannode_disk_free_bytes; without it the gauge is not set. */
  dataDir?: string;
  log: Logger;
  /** Read at every scrape: the DICOM listener's open associations. */
  activeAssociations?: () => number;
  /** process_* / nodejs_* metrics of prom-client (default true). */
  defaultMetrics?: boolean;
  /** The configured remote an association comes from (label `remote`; "unknown" when none or absent). */
  remoteOf?: (callingAe: string, address?: string) => string | undefined;
  /** This node's id (cluster.nodeId): every series is labelled `node` with it, so a cluster's scrapes add up. */
  node?: string;
}

/** What the DIMSE edge reports once a C-STORE is answered. */
export interface StoreCompleted {
  association: Pick<AssociationInfo, 'callingAe'> & Partial<Pick<AssociationInfo, 'remoteAddress'>>;
  status: number;
  bytes: number;
  durationMs: number;
}

/** 1 ms .. 10 s: a small image on loopback takes a few ms, a large multi-frame over a WAN seconds. */
export const CSTORE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** A reconcile pass: milliseconds when nothing is active, minutes when it pulls series by C-MOVE. */
export const SCHEDULER_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** Beyond this many distinct calling AE titles, further ones are counted under this label (bounded label set). */
export const MAX_CALLING_AES = 100;
export const OTHER_AE = '_other';

const toNumber = (v: unknown): number => {
  const n = typeof v === 'number' ? v : Number(v ?? 0);
  return Number.isFinite(n) ? n : 0;
};

interface InstanceStats {
  spooled: { bytes: number; count: number };
  archived: { bytes: number; count: number };
}

/**
 * The node's Prometheus metrics in a registry of its own (several nodes run in one test process, so never the global
 * one). Counters and histograms are fed by the hooks below; gauges over the database and the disk are computed when
 * scraped, and a failing query keeps the last value (warned once per failure streak) instead of failing /metrics.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly log: Logger;
  private readonly db: Database | undefined;
  private readonly dataDir: string | undefined;
  private readonly callingAes = new Set<string>();
  private readonly failing = new Set<string>();
  private instanceQuery: Promise<InstanceStats | undefined> | undefined;

  readonly instancesReceived: Counter<'calling_ae' | 'remote'>;
  readonly bytesReceived: Counter<'calling_ae' | 'remote'>;
  readonly storeFailures: Counter<'calling_ae' | 'remote' | 'status'>;
  private readonly remoteOf: MetricsOptions['remoteOf'];
  readonly cstoreDuration: Histogram;
  readonly associationsActive: Gauge;
  readonly associations: Counter<'result'>;
  readonly associationRejections: Counter<'reason'>;
  readonly remoteAssociations: Counter<'remote' | 'result'>;
  readonly forwardAttempts: Counter<'destination' | 'outcome'>;
  readonly commitmentInstances: Counter<'remote' | 'result'>;
  readonly scans: Gauge<'state'>;
  readonly retrieveAttempts: Counter<'level'>;
  readonly retrieveFailures: Counter<'level'>;
  readonly spoolBytes: Gauge;
  readonly spoolInstances: Gauge;
  readonly archiveBytes: Gauge;
  readonly archiveInstances: Gauge;
  readonly diskFree: Gauge;
  readonly schedulerRunDuration: Histogram;
  readonly schedulerRuns: Counter<'result'>;

  constructor(opts: MetricsOptions) {
    this.log = opts.log;
    this.remoteOf = opts.remoteOf;
    this.db = opts.db;
    this.dataDir = opts.dataDir;
    if (opts.node) this.registry.setDefaultLabels({ node: opts.node });
    const registers = [this.registry];
    const stats = () => this.instanceStats();

    this.instancesReceived = new Counter({
      name: 'scannode_instances_received_total',
      help: 'C-STORE instances answered Success, by calling AE title',
      labelNames: ['calling_ae', 'remote'],
      registers,
    });
    this.bytesReceived = new Counter({
      name: 'scannode_bytes_received_total',
      help: 'Data set bytes of the C-STORE instances answered Success, by calling AE title',
      labelNames: ['calling_ae', 'remote'],
      registers,
    });
    this.storeFailures = new Counter({
      name: 'scannode_store_failures_total',
      help: 'C-STORE requests answered with a non-success status (4 hex digits), by calling AE title',
      labelNames: ['calling_ae', 'remote', 'status'],
      registers,
    });
    this.cstoreDuration = new Histogram({
      name: 'scannode_cstore_duration_seconds',
      help: 'Time from the first data byte of a C-STORE to its response',
      buckets: CSTORE_BUCKETS,
      registers,
    });
    const active = opts.activeAssociations;
    this.associationsActive = new Gauge({
      name: 'scannode_associations_active',
      help: 'DICOM associations open now',
      registers,
      collect: () => {
        if (!active) return;
        try {
          this.associationsActive.set(active());
        } catch (err) {
          this.failed('activeAssociations', err);
        }
      },
    });
    this.associations = new Counter({
      name: 'scannode_associations_total',
      help: 'DICOM associations requested, by result (accepted, rejected)',
      labelNames: ['result'],
      registers,
    });
    this.associationRejections = new Counter({
      name: 'scannode_association_rejections_total',
      help: 'DICOM associations rejected, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.remoteAssociations = new Counter({
      name: 'scannode_remote_associations_total',
      help: 'DICOM associations a configured remote opened to us, by remote name and result (accepted, rejected)',
      labelNames: ['remote', 'result'],
      registers,
    });
    this.forwardAttempts = new Counter({
      name: 'scannode_forward_attempts_total',
      help: 'Forwarding attempts by destination and outcome (sent, committed, failed: storage commitment included)',
      labelNames: ['destination', 'outcome'],
      registers,
    });
    this.commitmentInstances = new Counter({
      name: 'scannode_commitment_instances_total',
      help: 'Instances in the storage commitment reports we delivered, by requesting remote and result (committed, failed)',
      labelNames: ['remote', 'result'],
      registers,
    });
    this.scans = new Gauge({
      name: 'scannode_scans',
      help: 'Scan requests (rows of table scans) per state',
      labelNames: ['state'],
      registers,
      collect: () => this.collectScans(),
    });
    for (const state of SCAN_STATES) this.scans.set({ state }, 0);
    this.retrieveAttempts = new Counter({
      name: 'scannode_retrieve_attempts_total',
      help: 'C-MOVE attempts of the reconciler, by level (STUDY, SERIES, IMAGE)',
      labelNames: ['level'],
      registers,
    });
    this.retrieveFailures = new Counter({
      name: 'scannode_retrieve_failures_total',
      help: 'C-MOVE attempts that failed (status not 0000, an error, or failed sub-operations), by level',
      labelNames: ['level'],
      registers,
    });
    const instanceGauge = (name: string, help: string, pick: (s: InstanceStats) => number): Gauge =>
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          const s = await stats();
          if (s) this.set(pick(s));
        },
      });
    this.spoolBytes = instanceGauge('scannode_spool_bytes', 'Bytes of the spooled instances', (s) => s.spooled.bytes);
    this.spoolInstances = instanceGauge(
      'scannode_spool_instances',
      'Instances in the spool (received, not yet archived)',
      (s) => s.spooled.count,
    );
    this.archiveBytes = instanceGauge(
      'scannode_archive_bytes',
      'Bytes of the archived instances',
      (s) => s.archived.bytes,
    );
    this.archiveInstances = instanceGauge(
      'scannode_archive_instances',
      'Instances archived under site/raw',
      (s) => s.archived.count,
    );
    this.diskFree = new Gauge({
      name: 'scannode_disk_free_bytes',
      help: 'Bytes available to scannode on the file system holding dataDir',
      registers,
      collect: () => this.collectDiskFree(),
    });
    this.schedulerRunDuration = new Histogram({
      name: 'scannode_scheduler_run_duration_seconds',
      help: 'Duration of one scheduler run (a reconcile pass over the active scans)',
      buckets: SCHEDULER_BUCKETS,
      registers,
    });
    this.schedulerRuns = new Counter({
      name: 'scannode_scheduler_runs_total',
      help: 'Scheduler runs, by result (ok, error)',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['ok', 'error']) this.schedulerRuns.inc({ result }, 0);
    for (const result of ['accepted', 'rejected']) this.associations.inc({ result }, 0);
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  // -- hooks --------------------------------------------------------------------------------------------------------

  /** A C-STORE was answered (DimseHandlers.storeCompleted). */
  storeCompleted(e: StoreCompleted): void {
    const callingAe = this.aeLabel(e.association.callingAe);
    // Configured names only (or "unknown"): the label set stays bounded by the config.
    const remote = this.remoteOf?.(e.association.callingAe, e.association.remoteAddress) ?? 'unknown';
    if (e.status === 0) {
      this.instancesReceived.inc({ calling_ae: callingAe, remote });
      this.bytesReceived.inc({ calling_ae: callingAe, remote }, Math.max(0, e.bytes));
    } else {
      this.storeFailures.inc({ calling_ae: callingAe, remote, status: statusLabel(e.status) });
    }
    this.cstoreDuration.observe(Math.max(0, e.durationMs) / 1000);
  }

  /** An association ended (DimseHandlers.associationClosed). */
  associationClosed(
    s: Pick<AssociationSummary, 'accepted' | 'rejection'> &
      Partial<Pick<AssociationSummary, 'callingAe' | 'remoteAddress'>>,
  ): void {
    const result = s.accepted ? 'accepted' : 'rejected';
    this.associations.inc({ result });
    const remote = s.callingAe === undefined ? undefined : this.remoteOf?.(s.callingAe, s.remoteAddress);
    if (remote) this.remoteAssociations.inc({ remote, result });
    // The edge passes the rejection's kind typed; none means the association was never set up (abort, TLS, close).
    if (!s.accepted) this.associationRejections.inc({ reason: s.rejection ?? 'setup-failed' });
  }

  /** The reconciler recorded a C-MOVE attempt (ReconcilerOptions.onRetrieveAttempt). */
  retrieveAttempt(
    row: Pick<RetrieveAttemptRow, 'level' | 'status' | 'error' | 'failed' | 'completed' | 'requested'>,
  ): void {
    this.retrieveAttempts.inc({ level: row.level });
    if (retrieveOutcome(row) !== 'ok') this.retrieveFailures.inc({ level: row.level });
  }

  /** A storage commitment report was delivered to `callingAe` (Commitments' onReported). */
  commitmentReported(callingAe: string, committed: number, failed: number): void {
    const remote = this.remoteOf?.(callingAe) ?? 'unknown';
    this.commitmentInstances.inc({ remote, result: 'committed' }, committed);
    this.commitmentInstances.inc({ remote, result: 'failed' }, failed);
  }

  /** A forwarding attempt ended (ForwarderOptions.onOutcome): `committed` when commitment was asked and given. */
  forwardAttempt(destination: string, outcome: 'sent' | 'committed' | 'failed'): void {
    this.forwardAttempts.inc({ destination, outcome });
  }

  schedulerRun(durationMs: number, ok: boolean): void {
    this.schedulerRunDuration.observe(Math.max(0, durationMs) / 1000);
    this.schedulerRuns.inc({ result: ok ? 'ok' : 'error' });
  }

  /** Wraps a scheduler job: its duration and result are observed, its outcome passed on unchanged. */
  timeJob<A extends unknown[]>(job: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
    return async (...args: A) => {
      const started = performance.now();
      try {
        await job(...args);
        this.schedulerRun(performance.now() - started, true);
      } catch (err) {
        this.schedulerRun(performance.now() - started, false);
        throw err;
      }
    };
  }

  // -- scrape-time gauges -------------------------------------------------------------------------------------------

  private async collectScans(): Promise<void> {
    const db = this.db;
    if (!db) return;
    try {
      const rows = await scanCountsByState(db);
      const counts = new Map(rows.map((r) => [r.state, toNumber(r.n)]));
      for (const state of SCAN_STATES) this.scans.set({ state }, counts.get(state) ?? 0);
      this.recovered('scans');
    } catch (err) {
      this.failed('scans', err);
    }
  }

  /** One query for the four spool / archive gauges, shared by the collect() calls of one scrape. */
  private instanceStats(): Promise<InstanceStats | undefined> {
    this.instanceQuery ??= this.queryInstances().finally(() => (this.instanceQuery = undefined));
    return this.instanceQuery;
  }

  private async queryInstances(): Promise<InstanceStats | undefined> {
    const db = this.db;
    if (!db) return undefined;
    try {
      const rows = await instanceCountsByState(db);
      const stats: InstanceStats = { spooled: { bytes: 0, count: 0 }, archived: { bytes: 0, count: 0 } };
      for (const r of rows) {
        if (r.state === 'spooled' || r.state === 'archived') {
          stats[r.state] = { bytes: toNumber(r.bytes), count: toNumber(r.n) };
        }
      }
      this.recovered('instances');
      return stats;
    } catch (err) {
      this.failed('instances', err);
      return undefined;
    }
  }

  private async collectDiskFree(): Promise<void> {
    if (this.dataDir === undefined) return;
    try {
      const s = await fs.promises.statfs(this.dataDir);
      this.diskFree.set(Number(s.bavail) * Number(s.bsize));
      this.recovered('disk');
    } catch (err) {
      this.failed('disk', err);
    }
  }

  // -- helpers --------------------------------------------------------------------------------------------------------

  private aeLabel(ae: string): string {
    const label = ae.trim();
    if (this.callingAes.has(label)) return label;
    if (this.callingAes.size >= MAX_CALLING_AES) return OTHER_AE;
    this.callingAes.add(label);
    return label;
  }

  private failed(what: string, err: unknown): void {
    if (this.failing.has(what)) return;
    this.failing.add(what);
    this.log.warn('metrics: cannot read a value, keeping the last one', {
      what,
      err: err instanceof Error ? err.message : String(err),
    });
  }

  private recovered(what: string): void {
    if (this.failing.delete(what)) this.log.info('metrics: value readable again', { what });
  }
}
