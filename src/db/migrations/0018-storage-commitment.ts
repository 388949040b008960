import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';

/** Storage commitment requests, kept until their report is delivered (issue 15). Portable: the Table API. */
export class StorageCommitment1763900000018 implements MigrationInterface {
  name = 'StorageCommitment1763900000018';

  async up(q: QueryRunner): Promise<void> {
    const ts = q.connection.options.type === 'postgres' ? 'timestamptz' : 'datetime';
    await q.createTable(
      new Table({
        name: 'storage_commitments',
        columns: [
          { name: 'transaction_uid', type: 'varchar', length: '64', isPrimary: true },
          { name: 'calling_ae', type: 'varchar', length: '16' },
          { name: 'referenced', type: 'text' },
          { name: 'state', type: 'varchar', length: '12' },
          { name: 'attempts', type: 'integer', default: 0 },
          { name: 'last_error', type: 'varchar', length: '512', isNullable: true },
          { name: 'received_at', type: ts },
          { name: 'delivered_at', type: ts, isNullable: true },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('storage_commitments');
  }
}
