import { TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Import batches that resume (attempts, when the next one is due, the counters carried over) and problem rows that
 * say whether the entry left its folder. Numbered after its issue (17) so that it never collides with the numbers
 * other changes of the same round take. Portable: the Table API.
 */
export class ImportRetries1763900000017 implements MigrationInterface {
  name = 'ImportRetries1763900000017';

  async up(q: QueryRunner): Promise<void> {
    const ts = q.connection.options.type === 'postgres' ? 'timestamptz' : 'datetime';
    await q.addColumns('import_batches', [
      new TableColumn({ name: 'attempts', type: 'integer', isNullable: false, default: 0 }),
      new TableColumn({ name: 'next_attempt_at', type: ts, isNullable: true }),
      new TableColumn({ name: 'carried', type: 'varchar', length: '512', isNullable: true }),
    ]);
    await q.addColumn(
      'import_problems',
      new TableColumn({ name: 'kind', type: 'varchar', length: '8', isNullable: false, default: "'listed'" }),
    );
    await q.createIndex(
      'import_batches',
      new TableIndex({ name: 'IDX_import_batches_started_at', columnNames: ['started_at'] }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex('import_batches', 'IDX_import_batches_started_at');
    await q.dropColumn('import_problems', 'kind');
    await q.dropColumns('import_batches', ['carried', 'next_attempt_at', 'attempts']);
  }
}
