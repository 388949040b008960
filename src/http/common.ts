import type { Config } from '../config/schema.js';
import type { RemoteStates } from '../pipeline/remoteDirectory.js';
import type { Database } from '../db/dataSource.js';
import type { Logger } from '../logging/logger.js';
import type { Importer } from '../pipeline/importer.js';
import type { ScanRequests } from '../pipeline/scans/scanRequests.js';
import type { SchedulerState } from '../scheduler/scheduler.js';
import type { Registry } from 'prom-client';
import type { ScanRow } from '../db/scanEntities.js';
import type { ScanProgress } from '../pipeline/retrieve/reconciler.js';
import type { ClusterView } from '../db/clusterStore.js';

/** The DICOM listener as the HTTP side sees it (health, status page). */
export interface DicomListenerView {
  readonly listening: boolean;
  readonly activeAssociations: number;
}

/** What the routes can use. Optional parts are absent in tests that build the app around a subset. */
export interface HttpServices {
  http: Config['http'];
  dataDir: string;
  log: Logger;
  importer: Importer;
  db?: Database;
  scans?: ScanRequests;
  /** The scheduler's state (paused, last run, next run). */
  scheduler?: () => SchedulerState;
  dicom?: DicomListenerView;
  /** The AE title and port, shown on the status page. */
  aeTitle?: string;
  /** prom-client registry served at /metrics. */
  metrics?: Registry;
  /** What the reconciler's last pass learnt of an active scan (expected counts, why it waits). */
  progress?: (scanId: string) => ScanProgress | undefined;
  /** Absolute path of an ended scan's summary (finished-scans/ or failed-scans/). */
  summaryFile?: (state: 'finished' | 'failed', scan: Pick<ScanRow, 'studyInstanceUid' | 'fileName' | 'id'>) => string;
  /** Subscribes to "something changed" (an image stored, an MPPS, a request): the live status page refreshes. */
  onChange?: (listener: () => void) => () => void;
  /** Tells the live status page that something changed (a request added through the API). */
  changed?: () => void;
  now?: () => Date;
  /** The named DICOM nodes of the config (`remotes`, with the scanner). */
  remotes?: Config['remotes'];
  /** Each remote's last success and last error (remoteDirectory.ts). */
  remoteStates?: RemoteStates;
  /** Which of them is the scanner. */
  scannerName?: string;
  /** The cluster's nodes and which one runs the scheduler. */
  cluster?: () => Promise<ClusterView>;
}

/** A service the route needs, or 503 when this app was built without it. */
export function need<T>(service: T | undefined, what: string): T {
  if (service === undefined) throw httpError(503, `${what} not available`);
  return service;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** A JSON error body: what went wrong, for people and programs. */
export function httpError(statusCode: number, message: string): Error & { statusCode: number } {
  return Object.assign(new Error(message), { statusCode });
}
