/**
 * Owns the scanner's state as the log tells it: answers, not reachable, rejects our association, refuses the C-MOVE
 * with status X, times out. Logged once per change, with the DICOM status, not on every pass.
 */
import type { Logger } from '../../logging/logger.js';
import {
  ScuConnectError,
  ScuError,
  ScuRejectedError,
  ScuStatusError,
  ScuTimeoutError,
  type ScuPeer,
} from '../../dimse/scu.js';
import { hex } from '../../domain/status.js';

export class ScannerHealth {
  /** "ok", or what is wrong, as last logged. */
  private state = 'unknown';

  constructor(
    private readonly log: Logger,
    private readonly scanner: ScuPeer,
  ) {}

  ok(): void {
    if (this.state === 'ok') return;
    const was = this.state;
    this.state = 'ok';
    if (was !== 'unknown') this.log.info('the scanner answers again', { scanner: describe(this.scanner) });
  }

  problem(err: unknown, what: string): void {
    let key: string;
    let message: string;
    if (err instanceof ScuRejectedError) {
      key = `rejected:${err.result}:${err.source}:${err.reason}`;
      message = 'the scanner rejects our association (is our AE title known to it?)';
    } else if (err instanceof ScuConnectError) {
      key = 'down';
      message = 'the scanner is not reachable';
    } else if (err instanceof ScuTimeoutError) {
      key = 'timeout';
      message = 'the scanner does not answer in time';
    } else if (err instanceof ScuStatusError) {
      key = `status:${err.status}`;
      message = `the scanner refuses the ${err.operation}`;
    } else if (err instanceof ScuError) {
      key = 'aborted';
      message = 'the scanner ended the association';
    } else {
      key = `error:${String(err)}`;
      message = `${what} failed`;
    }
    this.note(key, message, {
      operation: what,
      status: err instanceof ScuStatusError ? hex(err.status) : undefined,
      err: errorText(err),
    });
  }

  note(key: string, message: string, meta: Record<string, unknown>): void {
    if (this.state === key) return;
    this.state = key;
    this.log.warn(message, { scanner: describe(this.scanner), ...meta });
  }
}

export function describe(p: ScuPeer): string {
  return `${p.aeTitle}@${p.host}:${p.port}`;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
