import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Storage commitment of forwarded studies (issue 15): the Transaction UID an outbox row waits on and how many of its
 * instances the destination committed. Portable: the Table API.
 */
export class ForwardCommitment1763900000033 implements MigrationInterface {
  name = 'ForwardCommitment1763900000033';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumns('forward_outbox', [
      new TableColumn({ name: 'commit_transaction_uid', type: 'varchar', length: '64', isNullable: true }),
      new TableColumn({ name: 'instances_committed', type: 'integer', default: 0 }),
    ]);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('forward_outbox', 'instances_committed');
    await q.dropColumn('forward_outbox', 'commit_transaction_uid');
  }
}
