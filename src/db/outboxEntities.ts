/** The forwarding outbox: one row per (scan, destination remote), with its state and attempts. */
import { EntitySchema } from 'typeorm';
import type { Dialect } from './entities.js';

/**
 * pending: to send (again) when due; committing: sent, waiting for the destination's storage commitment report until
 * next_attempt_at; sent: delivered (no commitment asked); committed: delivered and committed; given-up: out of tries.
 */
export const OUTBOX_STATES = ['pending', 'committing', 'sent', 'committed', 'given-up'] as const;
export type OutboxState = (typeof OUTBOX_STATES)[number];

export interface OutboxRow {
  id: string;
  scanId: string;
  studyInstanceUid: string;
  /** The destination's name in `remotes`. */
  destination: string;
  /** Only the series whose description matches (the rule's filter), or null for every series. */
  seriesFilter: string | null;
  state: OutboxState;
  attempts: number;
  nextAttemptAt: Date;
  lastError: string | null;
  /** Instances the destination answered Success (or a warning) in the last attempt. */
  instancesSent: number;
  instancesTotal: number;
  /** The storage commitment request this row waits on (state committing), or the last one asked. */
  commitTransactionUid: string | null;
  /** Instances the destination reported committed. */
  instancesCommitted: number;
  createdAt: Date;
  updatedAt: Date;
}

export function outboxEntities(d: Dialect) {
  const Outbox = new EntitySchema<OutboxRow>({
    name: 'Outbox',
    tableName: 'forward_outbox',
    columns: {
      id: { type: 'varchar', length: 36, primary: true },
      scanId: { name: 'scan_id', type: 'varchar', length: 36 },
      studyInstanceUid: { name: 'study_instance_uid', type: 'varchar', length: 64 },
      destination: { type: 'varchar', length: 64 },
      seriesFilter: { name: 'series_filter', type: 'varchar', length: 256, nullable: true },
      state: { type: 'varchar', length: 12 },
      attempts: { type: 'integer' },
      nextAttemptAt: { name: 'next_attempt_at', type: d.timestamp },
      lastError: { name: 'last_error', type: 'varchar', length: 512, nullable: true },
      instancesSent: { name: 'instances_sent', type: 'integer' },
      instancesTotal: { name: 'instances_total', type: 'integer' },
      commitTransactionUid: { name: 'commit_transaction_uid', type: 'varchar', length: 64, nullable: true },
      instancesCommitted: { name: 'instances_committed', type: 'integer', default: 0 },
      createdAt: { name: 'created_at', type: d.timestamp },
      updatedAt: { name: 'updated_at', type: d.timestamp },
    },
    uniques: [{ name: 'uq_forward_outbox_scan_destination', columns: ['scanId', 'destination'] }],
  });
  return { Outbox };
}

export type OutboxEntities = ReturnType<typeof outboxEntities>;
