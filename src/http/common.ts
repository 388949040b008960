import type { Config } from '../config/schema.js';
import type { Database } from '../db/dataSource.js';
import type { Logger } from '../logging/logger.js';
import type { Importer } from '../pipeline/importer.js';
import type { ScanRequests } from '../pipeline/scanRequests.js';
import type { SchedulerState } from '../scheduler/scheduler.js';
import type { Registry } from 'prom-client';

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
  now?: () => Date;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** A JSON error body: what went wrong, for people and programs. */
export function httpError(statusCode: number, message: string): Error & { statusCode: number } {
  return Object.assign(new Error(message), { statusCode });
}
