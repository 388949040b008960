import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** Import batches (inbox, REST, CLI) with their counts, and the files each could not import. Portable: the Table API. */
export class Imports1763900000005 implements MigrationInterface {
  name = 'Imports1763900000005';

  async up(q: QueryRunner): Promise<void> {
    const ts = q.connection.options.type === 'postgres' ? 'timestamptz' : 'datetime';
    const int = (name: string) => ({ name, type: 'integer', isNullable: false, default: 0 });
    const text = (name: string, length: number, nullable = false) => ({
      name,
      type: 'varchar',
      length: String(length),
      isNullable: nullable,
    });
    await q.createTable(
      new Table({
        name: 'import_batches',
        columns: [
          { ...text('id', 36), isPrimary: true },
          text('name', 256),
          text('source', 16),
          text('path', 1024),
          text('state', 16),
          { name: 'keep_sources', type: 'boolean', isNullable: false },
          text('patient_id', 64, true),
          text('study_label', 128, true),
          int('files_found'),
          int('files_read'),
          int('archived'),
          int('duplicates'),
          int('problems'),
          int('errors'),
          { name: 'bytes', type: 'bigint', isNullable: false, default: 0 },
          { name: 'started_at', type: ts, isNullable: false },
          { name: 'ended_at', type: ts, isNullable: true },
          text('message', 1024, true),
        ],
        indices: [new TableIndex({ columnNames: ['state'] }), new TableIndex({ columnNames: ['path'] })],
      }),
    );
    await q.createTable(
      new Table({
        name: 'import_problems',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          text('batch_id', 36),
          text('path', 1024),
          text('reason', 1024),
        ],
        indices: [new TableIndex({ columnNames: ['batch_id'] })],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('import_problems');
    await q.dropTable('import_batches');
  }
}
