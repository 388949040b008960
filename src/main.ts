import type { LoadedConfig } from './config/load.js';
import { openDatabase, type Database } from './db/dataSource.js';
import { DicomServer } from './dimse/server.js';
import { createLogger, type Logger } from './logging/logger.js';
import { Ingest, type IngestedInstance } from './pipeline/ingest.js';
import { MppsService } from './pipeline/mpps.js';
import { ScanRequests } from './pipeline/scans/scanRequests.js';
import { Completion } from './pipeline/completion.js';
import { Reconciler } from './pipeline/retrieve/reconciler.js';
import { ScannerSending } from './pipeline/scannerSending.js';
import { AwaitedImages } from './pipeline/awaitedImages.js';
import { PassTriggers } from './pipeline/passTriggers.js';
import { Commitments } from './pipeline/commitment.js';
import { Scheduler } from './scheduler/scheduler.js';
import { isSchedulerPaused } from './scheduler/pauseFlag.js';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import type { FastifyInstance } from 'fastify';
import { Metrics } from './metrics/metrics.js';
import { Archiver } from './pipeline/archive.js';
import { AssociationAudit } from './pipeline/associationAudit.js';
import { Forwarder } from './pipeline/forward/forwarder.js';
import { Importer } from './pipeline/importer.js';
import { InboxWatcher } from './pipeline/inboxWatcher.js';
import { DATA_DIRS } from './domain/paths.js';
import { startHttp } from './http/server.js';
import { ArchiveRecovery, archiveWalkNeeded, type WalkCounts } from './pipeline/archiveRecovery.js';
import { startRunMarker } from './pipeline/runMarker.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION } from './storage/part10.js';
import { VERSION } from './version.js';
import { remoteOf } from './domain/remotes.js';
import { clusterView } from './db/clusterStore.js';
import { clusterJob, type Membership } from './cluster/membership.js';
import { joinCluster, nodeIdOf } from './cluster/join.js';
import { recoverOwnSpool, type SpoolTakeover } from './cluster/spoolTakeover.js';
import { spoolDirs } from './domain/paths.js';
import { noWake, type Wake } from './cluster/wake.js';
import { peerForScan, recordAssociation, RemoteStates, sourceRemoteProblem } from './pipeline/remoteDirectory.js';

/** What a started node is made of (ScannodeNode's getters). */
interface NodeParts {
  db: Database;
  membership: Membership;
  metrics: Metrics;
  ingest: Ingest;
  archiver: Archiver;
  archiveRecovery: ArchiveRecovery;
  scans: ScanRequests;
  mpps: MppsService;
  completion: Completion;
  scheduler: Scheduler;
  sending: ScannerSending;
  reconciler: Reconciler;
  dicom: DicomServer;
  importer: Importer;
  inbox: InboxWatcher;
  http: FastifyInstance;
}

export interface NodeOptions {
  /** Silence the console logger (tests). */
  quiet?: boolean;
  logger?: Logger;
  /** The clock of everything time-based in completion (tests inject a fake one). */
  now?: () => Date;
}

/**
 * One scannode process, started in this order: database -> ingest (spool recovery) -> scan requests -> MPPS ->
 * completion / reconciler / scheduler -> DICOM listener -> imports -> HTTP. `stop` unwinds it: HTTP, scheduler (waits
 * for the running pass), DICOM listener (associations in flight finish), audit rows, imports, request watcher, and
 * the database last. Safe to call twice.
 */
export class ScannodeNode {
  readonly log: Logger;
  /** The parts, each set once start() has built it. */
  private readonly parts: Partial<NodeParts> = {};
  private commitments: Commitments | undefined;
  private wake: Wake = noWake;
  /** With cluster.sharedDataDir: this node's recovery of dead nodes' spools. */
  private spoolTakeover: SpoolTakeover | undefined;
  private audit: AssociationAudit | undefined;
  /** The forwarding outbox's sender (tests run its due rows with deliverNow). */
  forwarder: Forwarder | undefined;
  /** The background walk of site/raw started at start-up (undefined when none was needed). */
  reindexing: Promise<WalkCounts | undefined> | undefined;
  private runMarker: { uncleanBefore: boolean; clear(): void } | undefined;
  private readonly now: () => Date;
  /** 'change' when something the status page shows changed: an image stored, an MPPS, a scheduler pass. */
  private readonly changes = new EventEmitter();
  /** Each remote's last success and last error (GET /api/remotes). */
  readonly remoteStates = new RemoteStates();
  private stopping: Promise<void> | undefined;

  constructor(
    readonly loaded: LoadedConfig,
    opts: NodeOptions = {},
  ) {
    const { config } = loaded;
    this.log = opts.logger ?? createLogger({ level: config.log.level, file: config.log.file, silent: opts.quiet });
    this.now = opts.now ?? (() => new Date());
  }

  get db(): Database {
    return this.part('db');
  }
  get ingest(): Ingest {
    return this.part('ingest');
  }
  get scans(): ScanRequests {
    return this.part('scans');
  }
  get mpps(): MppsService {
    return this.part('mpps');
  }
  get dicom(): DicomServer {
    return this.part('dicom');
  }
  get completion(): Completion {
    return this.part('completion');
  }
  get reconciler(): Reconciler {
    return this.part('reconciler');
  }
  get scheduler(): Scheduler {
    return this.part('scheduler');
  }
  /** Which studies the scanner is still sending (its open associations). */
  get sending(): ScannerSending {
    return this.part('sending');
  }
  get importer(): Importer {
    return this.part('importer');
  }
  /** The inbox watcher; undefined when import.watchInbox is off. */
  get inbox(): InboxWatcher | undefined {
    this.part('importer');
    return this.parts.inbox;
  }
  get http(): FastifyInstance {
    return this.part('http');
  }
  /** This node in the cluster: its id, whether it runs the scheduler. */
  get membership(): Membership {
    return this.part('membership');
  }
  /** prom-client metrics (src/metrics), created before the parts that report to it. */
  get metrics(): Metrics {
    return this.part('metrics');
  }
  /** The one Archiver of this process: completion, imports and the archive recovery share it. */
  get archiver(): Archiver {
    return this.part('archiver');
  }
  get archiveRecovery(): ArchiveRecovery {
    return this.part('archiveRecovery');
  }

  /** A part of the node; before start() has built it, a clear error rather than undefined. */
  private part<K extends keyof NodeParts>(name: K): NonNullable<NodeParts[K]> {
    const value = this.parts[name];
    if (value === undefined) throw new Error(`scannode node not started: no ${name} yet`);
    return value as NonNullable<NodeParts[K]>;
  }

  /** Starts every part; a start that fails unwinds what it had started (stop()) and rethrows. */
  async start(): Promise<void> {
    try {
      await this.startParts();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async startParts(): Promise<void> {
    const { config, dataDir } = this.loaded;
    const p = this.parts;
    this.log.info('scannode starting', { version: VERSION, node: process.version, config: this.loaded.file, dataDir });
    const db = (p.db = await openDatabase(config.database, dataDir));
    this.log.info('database ready', { type: db.type });
    // Before anything touches the spool: a second node on the same SQLite database is refused here.
    const cluster = await joinCluster(config, db, VERSION, this.log, {
      passWanted: () => p.scheduler?.trigger(),
      inbox: (held) => this.watchInbox(held),
      activeAssociations: () => p.dicom?.activeAssociations ?? 0,
    });
    const membership = (p.membership = cluster.membership);
    this.wake = cluster.wake;
    const metrics = (p.metrics = new Metrics({
      db,
      dataDir,
      log: this.log,
      activeAssociations: () => p.dicom?.activeAssociations ?? 0,
      remoteOf: (ae, address) => remoteOf(config.remotes, ae, address),
      node: nodeIdOf(config),
    }));
    // Nodes sharing the data directory spool apart; this node's spool is recovered under its lease (spoolTakeover.ts).
    const spool = config.cluster.sharedDataDir ? spoolDirs(nodeIdOf(config)) : undefined;
    const ingest = (p.ingest = new Ingest(db, dataDir, this.log, {
      onConflict: config.dicom.onConflict,
      poolSize: config.spool.poolSize,
      spool,
    }));
    this.spoolTakeover = await recoverOwnSpool(membership, ingest, spool, {
      db,
      dataDir,
      log: this.log,
      cluster: config.cluster,
      passWanted: () => p.scheduler?.trigger(),
    });
    // The archive's part of recovery, after the spool's: cheap checks now, the walk of site/raw later if needed.
    const archiver = (p.archiver = new Archiver(db, dataDir, this.log));
    const archiveRecovery = (p.archiveRecovery = new ArchiveRecovery(
      db,
      dataDir,
      this.log,
      archiver,
      ingest.spool.incoming,
    ));
    await archiveRecovery.quick();
    this.runMarker = startRunMarker(spool ? path.join(dataDir, spool.incoming) : dataDir); // per node when shared
    const walkArchive = await archiveWalkNeeded(
      db,
      dataDir,
      config.archive.reindexOnStart,
      this.runMarker.uncleanBefore,
    );
    const scans = (p.scans = new ScanRequests(db, dataDir, this.log, {
      sourceProblem: (r) => sourceRemoteProblem(config.remotes, config.scanner.name, r),
    }));
    await scans.start();
    ingest.on('instance', (i: IngestedInstance) => void scans.onInstance(i));
    ingest.on('instance', () => this.changes.emit('change'));
    const mpps = (p.mpps = new MppsService(db, dataDir, this.log, scans));
    const { completion: cc, retrieve: rc } = config;
    // One sender in a cluster: the node running the scheduler.
    const forwarder = (this.forwarder = Forwarder.fromConfig(
      config,
      db,
      dataDir,
      this.log,
      () => membership.leader,
      (o) => {
        this.metrics.forwardAttempt(o.destination, o.ok ? (o.committed ? 'committed' : 'sent') : 'failed');
        if (o.ok) this.remoteStates.succeeded(o.destination);
        else this.remoteStates.failed(o.destination, o.error ?? '');
        this.parts.completion?.forwardsChanged(o.scanId).catch((err: unknown) => {
          this.log.warn('cannot update the summary with the forward state', { scan: o.scanId, err: String(err) });
        });
      },
    ));
    const completion = (p.completion = new Completion(
      db,
      dataDir,
      this.log,
      scans,
      { quietPeriodSeconds: cc.quietPeriodSeconds, now: this.now, grouping: cc.grouping },
      archiver,
      forwarder,
    ));
    // The job reaches the reconciler, built next, only once the scheduler runs.
    const scheduler = (p.scheduler = new Scheduler({
      cron: config.scheduler.cron,
      enabled: config.scheduler.enabled,
      job: clusterJob(
        membership,
        this.wake,
        metrics.timeJob(() => this.reconciler.reconcileAll()),
      ),
      log: this.log,
      isPaused: () => isSchedulerPaused(db),
    }));
    const awaited = new AwaitedImages();
    const triggers = new PassTriggers({ isActiveStudy: (s) => scans.isActiveStudy(s), awaited, scheduler });
    const sending = (p.sending = new ScannerSending(config.scanner.aeTitle, (studies) =>
      triggers.scannerStopped(studies),
    ));
    const reconciler = (p.reconciler = new Reconciler(db, this.log, scans, completion, {
      scanner: config.scanner,
      peerOf: (scan) => peerForScan(config, scan),
      scannerName: config.scanner.name,
      remoteOutcomes: this.remoteStates,
      aeTitle: config.dicom.aeTitle,
      completeness: { ...cc, ...rc },
      findTimeoutMs: rc.findTimeoutSeconds * 1000,
      moveTimeoutMs: rc.moveTimeoutSeconds * 1000,
      now: this.now,
      wake: () => triggers.wake(),
      scannerSending: (study) => sending.isSending(study),
      awaited,
      onRetrieveAttempt: (row) => metrics.retrieveAttempt(row),
    }));
    ingest.on('instance', (i: IngestedInstance) => {
      sending.instance(i);
      triggers.imageStored(i);
    });
    const commitments = new Commitments(db, this.log, {
      dataDir,
      ourAe: config.dicom.aeTitle,
      // The requester among the remotes, by AE title: the report goes back on a new association to it.
      peerFor: (ae) => {
        const name = remoteOf(config.remotes, ae);
        return name ? config.remotes[name] : undefined;
      },
      maxTries: config.storageCommitment.maxTries,
      retryMs: config.storageCommitment.retrySeconds * 1000,
      // Several nodes may share the database: retries run on the scheduler's node only.
      ...(db.type === 'postgres' ? { retries: () => membership.leader } : {}),
      onReported: (ae, committed, failed) => metrics.commitmentReported(ae, committed, failed),
    });
    this.commitments = commitments;
    const audit = (this.audit = new AssociationAudit(db, this.log));
    const dicom = (p.dicom = new DicomServer(
      {
        ...config.dicom,
        implementationClassUid: IMPLEMENTATION_CLASS_UID,
        implementationVersionName: IMPLEMENTATION_VERSION,
      },
      {
        openStore: (req) => {
          const sink = ingest.openStore(req);
          sending.storeOpened(req);
          return sink;
        },
        nCreate: async (req) => {
          const rsp = await mpps.nCreate(req);
          this.changes.emit('change');
          return rsp;
        },
        nSet: async (req) => {
          const rsp = await mpps.nSet(req);
          triggers.nSetDone();
          this.changes.emit('change');
          return rsp;
        },
        nAction: (req) => commitments.nAction(req),
        nEventReport: (req) => forwarder.commitmentReport(req),
        associationClosed: (s) => {
          metrics.associationClosed(s);
          recordAssociation(this.remoteStates, remoteOf(config.remotes, s.callingAe, s.remoteAddress), s);
          audit.record(s);
          sending.closed(s);
          this.changes.emit('change');
        },
        storeCompleted: (e) => metrics.storeCompleted(e),
      },
      this.log,
    ));
    await dicom.listen();
    commitments.start();
    forwarder.start();
    scheduler.start();
    this.spoolTakeover?.start();
    // Imports (inbox watcher, REST) and the HTTP server, after the DICOM listener.
    const ic = config.import;
    const importer = (p.importer = new Importer(db, ingest, archiver, dataDir, this.log, {
      concurrency: ic.concurrency,
      retryBaseMs: ic.retrySeconds * 1000,
      retryMaxMs: ic.retryMaxSeconds * 1000,
      maxAttempts: ic.maxAttempts,
      now: this.now,
      node: membership.id,
    }));
    await importer.markInterrupted();
    importer.startRetries();
    if (ic.watchInbox) this.watchInbox(membership.holds('inbox'));
    p.http = await startHttp({
      http: config.http,
      dataDir,
      log: this.log,
      importer,
      db,
      scans,
      scheduler: () => scheduler.state,
      dicom,
      aeTitle: config.dicom.aeTitle,
      metrics: metrics.registry,
      progress: (id) => reconciler.progress(id),
      summaryFile: (state, scan) => completion.summaryFile(state, scan),
      onChange: (listener) => {
        this.changes.on('change', listener);
        return () => this.changes.off('change', listener);
      },
      changed: () => this.changes.emit('change'),
      now: this.now,
      cluster: () => clusterView(db, Date.now(), config.cluster.leaseSeconds * 1000),
      remotes: config.remotes,
      remoteStates: this.remoteStates,
      scannerName: config.scanner.name,
    });
    if (walkArchive) {
      this.reindexing = archiveRecovery.walkInBackground(walkArchive, () => this.changes.emit('change'));
    }
  }

  /** Starts the inbox watcher when this node takes the inbox lease, stops it when the lease goes to another node. */
  private watchInbox(held: boolean): void {
    const p = this.parts;
    if (!p.importer || this.stopping) return;
    if (held && !p.inbox) {
      const ic = this.loaded.config.import;
      p.inbox = new InboxWatcher(p.importer, path.join(this.loaded.dataDir, DATA_DIRS.inbox), this.log, {
        stableMs: ic.stableSeconds * 1000,
        rescanMs: ic.rescanSeconds * 1000,
      });
      p.inbox.start();
    } else if (!held && p.inbox) {
      const watcher = p.inbox;
      p.inbox = undefined;
      void watcher.stop();
    }
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const p = this.parts;
    // The reverse of start(); each part only if start() got that far.
    const steps: Array<[string, () => Promise<void> | undefined]> = [
      ['HTTP server', () => p.http?.close()],
      ['scheduler', () => (p.reconciler?.stop(), p.scheduler?.stop())],
      ['archive walk', async () => void (p.archiveRecovery?.stop(), await this.reindexing)],
      ['DICOM listener', () => (this.commitments?.stop(), p.dicom?.close())],
      ['forwarding', () => this.forwarder?.stop()],
      ['spool takeover', () => this.spoolTakeover?.stop()],
      ['association audit', () => this.audit?.drain()],
      // Both flags are set at once: the batch in flight stops after the files it holds (state interrupted).
      ['imports', async () => void (await Promise.all([p.inbox?.stop(), p.importer?.stop()]))],
      ['scan request watcher', () => p.scans?.stop()],
      ['spool', () => p.ingest?.close()],
      ['cluster membership', async () => void (await this.wake.close(), await p.membership?.leave())],
      ['database', () => p.db?.close()],
    ];
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (err) {
        this.log.error(`error while stopping the ${name}`, { err: String(err) });
      }
    }
    this.runMarker?.clear();
    this.log.info('scannode stopped');
  }
}
