/** The forwarding outbox: one row per (scan, destination remote), with its state and attempts. */
import { EntitySchema } from 'typeorm';
import type { Dialect } from './entities.js';

export const OUTBOX_STATES = ['pending', 'sent', 'given-up'] as const;
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
      createdAt: { name: 'created_at', type: d.timestamp },
      updatedAt: { name: 'updated_at', type: d.timestamp },
    },
    uniques: [{ name: 'uq_forward_outbox_scan_destination', columns: ['scanId', 'destination'] }],
  });
  return { Outbox };
}

export type OutboxEntities = ReturnType<typeof outboxEntities>;
