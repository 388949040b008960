import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * The node running an import batch (issue 16): a node's start-up ends only its own batches, and a dead node's are
 * resumed by another. Null: the command line (`scannode import`), or a batch from before. Portable.
 */
export class ImportNode1763900000035 implements MigrationInterface {
  name = 'ImportNode1763900000035';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(
      'import_batches',
      new TableColumn({ name: 'node', type: 'varchar', length: '64', isNullable: true }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('import_batches', 'node');
  }
}
