import type { LoadedConfig } from './config/load.js';
import { openDatabase, type Database } from './db/dataSource.js';
import { DicomServer } from './dimse/server.js';
import { createLogger, type Logger } from './logging/logger.js';
import { Ingest, type IngestedInstance } from './pipeline/ingest.js';
import { MppsService } from './pipeline/mpps.js';
import { ScanRequests } from './pipeline/scanRequests.js';

export interface NodeOptions {
  /** Silence the console logger (tests). */
  quiet?: boolean;
  logger?: Logger;
}

/**
 * One scannode process: database -> ingest (spool recovery) -> DICOM listener. `stop` unwinds in reverse: stop
 * accepting, let associations in flight finish, close the database. Safe to call twice.
 */
export class ScannodeNode {
  readonly log: Logger;
  db: Database | undefined;
  ingest: Ingest | undefined;
  scans: ScanRequests | undefined;
  mpps: MppsService | undefined;
  dicom: DicomServer | undefined;
  private stopping: Promise<void> | undefined;

  constructor(
    readonly loaded: LoadedConfig,
    opts: NodeOptions = {},
  ) {
    const { config } = loaded;
    this.log = opts.logger ?? createLogger({ level: config.log.level, file: config.log.file, silent: opts.quiet });
  }

  async start(): Promise<void> {
    const { config, dataDir } = this.loaded;
    this.db = await openDatabase(config.database, dataDir);
    this.log.info('database ready', { type: this.db.type });
    const ingest = new Ingest(this.db, dataDir, this.log, { onConflict: config.dicom.onConflict });
    this.ingest = ingest;
    await ingest.recover();
    const scans = new ScanRequests(this.db, dataDir, this.log);
    this.scans = scans;
    await scans.start();
    ingest.on('instance', (i: IngestedInstance) => void scans.onInstance(i));
    const mpps = new MppsService(this.db, dataDir, this.log, scans);
    this.mpps = mpps;
    this.dicom = new DicomServer(
      { ...config.dicom },
      {
        openStore: (req) => ingest.openStore(req),
        nCreate: mpps.nCreate,
        nSet: mpps.nSet,
        associationClosed: (s) => ingest.recordAssociation(s),
      },
      this.log,
    );
    await this.dicom.listen();
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const steps: Array<[string, () => Promise<void> | undefined]> = [
      ['DICOM listener', () => this.dicom?.close()],
      ['association audit', () => this.ingest?.drain()],
      ['scan request watcher', () => this.scans?.stop()],
      ['database', () => this.db?.close()],
    ];
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (err) {
        this.log.error(`error while stopping the ${name}`, { err: String(err) });
      }
    }
    this.log.info('scannode stopped');
  }
}
