/**
 * Owns the association audit: every association that ended (accepted or rejected) becomes a row, written in the
 * background; shutdown waits for the rows in flight before the database closes. A row that cannot be written is
 * logged, never fatal.
 */
import { insertAssociation } from '../db/associationStore.js';
import type { Database } from '../db/dataSource.js';
import type { AssociationSummary } from '../dimse/types.js';
import type { Logger } from '../logging/logger.js';

export class AssociationAudit {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  record(s: AssociationSummary): void {
    const write = insertAssociation(this.db, s).catch(
      (err: unknown) => void this.log.error('cannot record association', { err: String(err) }),
    );
    this.pending.add(write);
    void write.finally(() => this.pending.delete(write));
  }

  /** Waits for the rows still being written. */
  async drain(): Promise<void> {
    await Promise.all([...this.pending]);
  }
}
