import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** MPPS steps and their history, scan requests and the instances each scan expects. Portable: the Table API. */
export class MppsScans1763900000002 implements MigrationInterface {
  name = 'MppsScans1763900000002';

  async up(q: QueryRunner): Promise<void> {
    const ts = q.connection.options.type === 'postgres' ? 'timestamptz' : 'datetime';
    const col = (name: string, length: number, nullable = true, isPrimary = false) => ({
      name,
      type: 'varchar',
      length: String(length),
      isNullable: nullable,
      isPrimary,
    });
    await q.createTable(
      new Table({
        name: 'mpps_steps',
        columns: [
          col('sop_instance_uid', 64, false, true),
          col('status', 16, false),
          col('scan_id', 36),
          col('study_instance_uid', 64),
          col('accession_number', 64),
          col('patient_id', 64),
          col('calling_ae', 16),
          col('start_date', 8),
          col('start_time', 16),
          col('end_date', 8),
          col('end_time', 16),
          { name: 'created_at', type: ts },
          { name: 'updated_at', type: ts },
          { name: 'ended_at', type: ts, isNullable: true },
          { name: 'dataset', type: 'text' },
        ],
        indices: [
          new TableIndex({ columnNames: ['scan_id'] }),
          new TableIndex({ columnNames: ['study_instance_uid'] }),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'mpps_events',
        columns: [
          col('id', 36, false, true),
          col('mpps_uid', 64, false),
          col('action', 16, false),
          col('status_before', 16),
          col('status_after', 16, false),
          col('calling_ae', 16),
          { name: 'at', type: ts },
          { name: 'dataset', type: 'text' },
        ],
        indices: [new TableIndex({ columnNames: ['mpps_uid'] })],
      }),
    );
    await q.createTable(
      new Table({
        name: 'scans',
        columns: [
          col('id', 36, false, true),
          col('study_instance_uid', 64),
          col('accession_number', 64),
          col('patient_id', 64),
          col('study_date', 8),
          col('mpps_uid', 64),
          col('state', 16, false),
          col('source', 16, false),
          col('file_name', 255),
          col('reason', 512),
          { name: 'requested_at', type: ts },
          { name: 'updated_at', type: ts },
          { name: 'completed_at', type: ts, isNullable: true },
        ],
        indices: [
          new TableIndex({ columnNames: ['study_instance_uid'] }),
          new TableIndex({ columnNames: ['state'] }),
          new TableIndex({ columnNames: ['file_name'] }),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'scan_expected_instances',
        columns: [
          col('scan_id', 36, false, true),
          col('sop_instance_uid', 64, false, true),
          col('series_instance_uid', 64, false),
          col('sop_class_uid', 64),
          col('mpps_uid', 64),
        ],
        indices: [new TableIndex({ columnNames: ['sop_instance_uid'] })],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of ['scan_expected_instances', 'scans', 'mpps_events', 'mpps_steps']) await q.dropTable(t);
  }
}
