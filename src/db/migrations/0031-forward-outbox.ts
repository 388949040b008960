import { Table, TableUnique, type MigrationInterface, type QueryRunner } from 'typeorm';

/** The forwarding outbox (issue 15): one row per (scan, destination). Portable: the Table API. */
export class ForwardOutbox1763900000031 implements MigrationInterface {
  name = 'ForwardOutbox1763900000031';

  async up(q: QueryRunner): Promise<void> {
    const ts = q.connection.options.type === 'postgres' ? 'timestamptz' : 'datetime';
    await q.createTable(
      new Table({
        name: 'forward_outbox',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'scan_id', type: 'varchar', length: '36' },
          { name: 'study_instance_uid', type: 'varchar', length: '64' },
          { name: 'destination', type: 'varchar', length: '64' },
          { name: 'series_filter', type: 'varchar', length: '256', isNullable: true },
          { name: 'state', type: 'varchar', length: '12' },
          { name: 'attempts', type: 'integer', default: 0 },
          { name: 'next_attempt_at', type: ts },
          { name: 'last_error', type: 'varchar', length: '512', isNullable: true },
          { name: 'instances_sent', type: 'integer', default: 0 },
          { name: 'instances_total', type: 'integer', default: 0 },
          { name: 'created_at', type: ts },
          { name: 'updated_at', type: ts },
        ],
        uniques: [
          new TableUnique({ name: 'uq_forward_outbox_scan_destination', columnNames: ['scan_id', 'destination'] }),
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('forward_outbox');
  }
}
