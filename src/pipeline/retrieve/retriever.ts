/**
 * Owns the C-MOVE side of reconciling: moves each missing series (whole, or its missing instances) from the scanner to
 * our own AE title, tells a fruitless move (Success, nothing arrived here) from a refused one, and records every attempt
 * in retrieve_attempts.
 */
import { randomUUID } from 'node:crypto';
import type { Database } from '../../db/dataSource.js';
import { countInstances } from '../../db/instanceStore.js';
import { insertRetrieveAttempt } from '../../db/retrieveStore.js';
import type { RetrieveAttemptRow } from '../../db/retrieveEntities.js';
import type { ScanRow } from '../../db/scanEntities.js';
import type { Logger } from '../../logging/logger.js';
import { cMove, type MoveResult, type ScuPeer } from '../../dimse/scu.js';
import { describeStatus, isFailure, statusText } from '../../domain/statusTable.js';
import type { MissingSeries } from '../../domain/completeness.js';
import { hex } from '../../domain/status.js';
import { errorText, type ScannerHealth } from './scannerHealth.js';

export interface RetrieverOptions {
  scanner: ScuPeer;
  peerOf?: (scan: ScanRow) => ScuPeer;
  /** Our AE title: the calling AE and the move destination. */
  aeTitle: string;
  moveTimeoutMs: number;
  now: () => Date;
  /** Called after each C-MOVE attempt's row is saved (metrics); an exception is logged only. */
  onRetrieveAttempt?: (row: RetrieveAttemptRow) => void;
}

export class Retriever {
  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly health: ScannerHealth,
    private readonly opts: RetrieverOptions,
  ) {}

  /** C-MOVE of each missing series (whole, or its missing instances); stops at the first connection problem. */
  async retrieve(scan: ScanRow, study: string, missing: MissingSeries[]): Promise<number> {
    let moves = 0;
    for (const m of missing) {
      const startedAt = this.opts.now();
      const started = Date.now();
      const row: RetrieveAttemptRow = {
        id: randomUUID(),
        scanId: scan.id,
        studyInstanceUid: study,
        seriesInstanceUid: m.seriesInstanceUid,
        level: m.level,
        requested: m.level === 'IMAGE' ? m.sopInstanceUids.length : m.missing,
        completed: null,
        failed: null,
        warning: null,
        remaining: null,
        status: null,
        error: null,
        startedAt,
        endedAt: startedAt,
      };
      let result: MoveResult | undefined;
      let connectionProblem = false;
      const before = await this.countSeries(study, m.seriesInstanceUid);
      try {
        result = await cMove(
          this.opts.peerOf?.(scan) ?? this.opts.scanner,
          this.opts.aeTitle,
          this.opts.aeTitle,
          m.level,
          {
            studyInstanceUid: study,
            seriesInstanceUid: m.seriesInstanceUid,
            ...(m.level === 'IMAGE' ? { sopInstanceUids: m.sopInstanceUids } : {}),
          },
          { timeoutMs: this.opts.moveTimeoutMs },
        );
        Object.assign(row, {
          completed: result.completed,
          failed: result.failed,
          warning: result.warning,
          remaining: result.remaining,
          status: result.status,
        });
        // The scanner's sub-operations reach us before its final response: nothing new here means they went elsewhere.
        const arrived = (await this.countSeries(study, m.seriesInstanceUid)) - before;
        if (!isFailure(result.status, 'C-MOVE') && (result.completed ?? 0) > 0 && arrived <= 0) {
          row.error =
            `fruitless: ${this.health.who(scan)} reported ${result.completed} sent, none arrived here ` +
            `(does its entry for ${this.opts.aeTitle} point to this node's address and port?)`;
          this.health.note(scan, 'move:fruitless', `${this.health.who(scan)} sends the C-MOVE elsewhere`, {
            completed: result.completed,
            destination: this.opts.aeTitle,
            err: row.error,
          });
        } else if (isFailure(result.status, 'C-MOVE')) {
          row.error = `${describeStatus(result.status, 'C-MOVE')}${result.comment ? ` (${result.comment})` : ''}`;
          this.health.note(
            scan,
            `move:${hex(result.status)}`,
            `${this.health.who(scan)} refuses the C-MOVE`,
            {
              status: hex(result.status),
              meaning: statusText(result.status, 'C-MOVE'),
              comment: result.comment,
              destination: this.opts.aeTitle,
              err: row.error,
            },
            result.status,
          );
        } else {
          this.health.ok(scan);
        }
      } catch (err) {
        row.error = errorText(err);
        connectionProblem = true;
        this.health.problem(scan, err, 'C-MOVE');
      }
      // The clock may be a test's: keep the real duration on top of the injected start.
      row.endedAt = new Date(startedAt.getTime() + (Date.now() - started));
      await insertRetrieveAttempt(this.db, row);
      moves++;
      try {
        this.opts.onRetrieveAttempt?.(row);
      } catch (err) {
        this.log.error('retrieve attempt hook failed', { err: String(err) });
      }
      this.log.info('C-MOVE from the scanner', {
        scan: scan.id,
        study,
        series: m.seriesInstanceUid,
        level: m.level,
        requested: row.requested,
        completed: row.completed ?? undefined,
        failed: row.failed ?? undefined,
        status: row.status === null ? undefined : hex(row.status),
        error: row.error ?? undefined,
        ms: Date.now() - started,
      });
      if (connectionProblem) break;
    }
    return moves;
  }

  private async countSeries(study: string, series: string): Promise<number> {
    return countInstances(this.db, { study, series });
  }
}
