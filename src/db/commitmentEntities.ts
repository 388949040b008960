/** The storage commitment requests (PS3.4 J) kept until their N-EVENT-REPORT is delivered. */
import { EntitySchema } from 'typeorm';
import type { Dialect } from './entities.js';

export interface CommitmentRow {
  transactionUid: string;
  callingAe: string;
  /** JSON: [[sopClassUid, sopInstanceUid], ...] as the requester listed them. */
  referenced: string;
  state: 'pending' | 'delivered' | 'given-up';
  attempts: number;
  lastError: string | null;
  receivedAt: Date;
  deliveredAt: Date | null;
}

export function commitmentEntities(d: Dialect) {
  const Commitment = new EntitySchema<CommitmentRow>({
    name: 'Commitment',
    tableName: 'storage_commitments',
    columns: {
      transactionUid: { name: 'transaction_uid', type: 'varchar', length: 64, primary: true },
      callingAe: { name: 'calling_ae', type: 'varchar', length: 16 },
      referenced: { type: 'text' },
      state: { type: 'varchar', length: 12 },
      attempts: { type: 'integer' },
      lastError: { name: 'last_error', type: 'varchar', length: 512, nullable: true },
      receivedAt: { name: 'received_at', type: d.timestamp },
      deliveredAt: { name: 'delivered_at', type: d.timestamp, nullable: true },
    },
  });
  return { Commitment };
}

export type CommitmentEntities = ReturnType<typeof commitmentEntities>;
