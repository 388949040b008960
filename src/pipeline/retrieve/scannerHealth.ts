/**
 * Owns the state of each remote we query and retrieve from (the scanner, a PACS) as the log and the status page tell
 * it: answers, not reachable, rejects our association, refuses the C-MOVE with status X, times out. Logged once per
 * change, naming the remote, with the DICOM status, not on every pass; each outcome also goes to the remotes' states
 * (`/api/remotes`, the status page).
 */
import type { Logger } from '../../logging/logger.js';
import type { ScanRow } from '../../db/scanEntities.js';
import {
  ScuConnectError,
  ScuError,
  ScuRejectedError,
  ScuStatusError,
  ScuTimeoutError,
  type ScuPeer,
} from '../../dimse/scu.js';
import { hex } from '../../domain/status.js';

/** Where outcomes are reported per remote name (RemoteStates of remoteDirectory.ts). */
export interface RemoteOutcomes {
  succeeded(name: string): void;
  failed(name: string, error: string, status?: number): void;
}

export interface HealthOptions {
  /** The scanner's remote name: a scan without its own remote is retrieved from it. */
  scannerName: string;
  /** The peer a scan is queried and retrieved from. */
  peerOf: (scan: ScanRow) => ScuPeer;
  outcomes?: RemoteOutcomes;
}

export class ScannerHealth {
  /** Per remote name: "ok", or what is wrong, as last logged. */
  private readonly states = new Map<string, string>();

  constructor(
    private readonly log: Logger,
    private readonly opts: HealthOptions,
  ) {}

  private nameOf(scan: ScanRow): string {
    return scan.remote ?? this.opts.scannerName;
  }

  /** How log lines name a remote: "the scanner", or the remote by its name. */
  private subject(name: string): string {
    return name === this.opts.scannerName ? 'the scanner' : `remote "${name}"`;
  }

  ok(scan: ScanRow): void {
    const name = this.nameOf(scan);
    this.opts.outcomes?.succeeded(name);
    const was = this.states.get(name) ?? 'unknown';
    if (was === 'ok') return;
    this.states.set(name, 'ok');
    if (was !== 'unknown') this.log.info(`${this.subject(name)} answers again`, { remote: this.where(scan) });
  }

  problem(scan: ScanRow, err: unknown, what: string): void {
    const who = this.subject(this.nameOf(scan));
    let key: string;
    let message: string;
    if (err instanceof ScuRejectedError) {
      key = `rejected:${err.result}:${err.source}:${err.reason}`;
      message = `${who} rejects our association (is our AE title known to it?)`;
    } else if (err instanceof ScuConnectError) {
      key = 'down';
      message = `${who} is not reachable`;
    } else if (err instanceof ScuTimeoutError) {
      key = 'timeout';
      message = `${who} does not answer in time`;
    } else if (err instanceof ScuStatusError) {
      key = `status:${err.status}`;
      message = `${who} refuses the ${err.operation}`;
    } else if (err instanceof ScuError) {
      key = 'aborted';
      message = `${who} ended the association`;
    } else {
      key = `error:${String(err)}`;
      message = `${what} failed`;
    }
    const status = err instanceof ScuStatusError ? err.status : undefined;
    this.note(
      scan,
      key,
      message,
      { operation: what, status: status === undefined ? undefined : hex(status), err: errorText(err) },
      status,
    );
  }

  /** A problem of `scan`'s remote (`key` tells one from another; `message` names the remote): logged once. */
  note(scan: ScanRow, key: string, message: string, meta: Record<string, unknown>, status?: number): void {
    const name = this.nameOf(scan);
    this.opts.outcomes?.failed(name, `${message}${meta.err ? `: ${String(meta.err)}` : ''}`, status);
    if (this.states.get(name) === key) return;
    this.states.set(name, key);
    this.log.warn(message, { remote: this.where(scan), ...meta });
  }

  /** The phrase for `scan`'s remote in a message: "the scanner" or remote "pacs". */
  who(scan: ScanRow): string {
    return this.subject(this.nameOf(scan));
  }

  private where(scan: ScanRow): string {
    return `${this.nameOf(scan)} ${describe(this.opts.peerOf(scan))}`;
  }
}

export function describe(p: ScuPeer): string {
  return `${p.aeTitle}@${p.host}:${p.port}`;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
