import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** Every C-FIND / C-MOVE attempt of the reconciler: time, level, counts, status. Portable: the Table API. */
export class Retrieve1763900000003 implements MigrationInterface {
  name = 'Retrieve1763900000003';

  async up(q: QueryRunner): Promise<void> {
    const ts = q.connection.options.type === 'postgres' ? 'timestamptz' : 'datetime';
    const col = (name: string, length: number, nullable = true, isPrimary = false) => ({
      name,
      type: 'varchar',
      length: String(length),
      isNullable: nullable,
      isPrimary,
    });
    const int = (name: string) => ({ name, type: 'integer', isNullable: true });
    await q.createTable(
      new Table({
        name: 'retrieve_attempts',
        columns: [
          col('id', 36, false, true),
          col('scan_id', 36, false),
          col('study_instance_uid', 64, false),
          col('series_instance_uid', 64),
          col('level', 8, false),
          int('requested'),
          int('completed'),
          int('failed'),
          int('warning'),
          int('remaining'),
          int('status'),
          col('error', 512),
          { name: 'started_at', type: ts },
          { name: 'ended_at', type: ts },
        ],
        indices: [new TableIndex({ columnNames: ['scan_id'] })],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('retrieve_attempts');
  }
}
