import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';

/** Key/value runtime settings (the scheduler's pause flag). Portable: the Table API. */
export class Settings1763900000004 implements MigrationInterface {
  name = 'Settings1763900000004';

  async up(q: QueryRunner): Promise<void> {
    const ts = q.connection.options.type === 'postgres' ? 'timestamptz' : 'datetime';
    await q.createTable(
      new Table({
        name: 'settings',
        columns: [
          { name: 'key', type: 'varchar', length: '64', isPrimary: true, isNullable: false },
          { name: 'value', type: 'text', isNullable: false },
          { name: 'updated_at', type: ts, isNullable: false },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('settings');
  }
}
