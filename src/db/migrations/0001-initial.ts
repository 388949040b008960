import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** Patients, studies, series, instances and the association audit. Portable: the Table API, no raw DDL. */
export class Initial1763900000001 implements MigrationInterface {
  name = 'Initial1763900000001';

  async up(q: QueryRunner): Promise<void> {
    const ts = q.connection.options.type === 'postgres' ? 'timestamptz' : 'datetime';
    const uid = (name: string, primary = false, nullable = false) => ({
      name,
      type: 'varchar',
      length: '64',
      isPrimary: primary,
      isNullable: nullable,
    });
    const text = (name: string, length: number, nullable = true) => ({
      name,
      type: 'varchar',
      length: String(length),
      isNullable: nullable,
    });
    await q.createTable(
      new Table({
        name: 'patients',
        columns: [
          text('patient_id', 64, false),
          text('patient_name', 324),
          text('birth_date', 8),
          text('sex', 16),
          { name: 'created_at', type: ts },
        ].map((c, i) => (i === 0 ? { ...c, isPrimary: true } : c)),
      }),
    );
    await q.createTable(
      new Table({
        name: 'studies',
        columns: [
          uid('study_instance_uid', true),
          text('patient_id', 64, false),
          text('accession_number', 64),
          text('study_date', 8),
          text('study_time', 16),
          text('study_description', 128),
          { name: 'created_at', type: ts },
        ],
        indices: [
          new TableIndex({ columnNames: ['patient_id'] }),
          new TableIndex({ columnNames: ['accession_number'] }),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'series',
        columns: [
          uid('series_instance_uid', true),
          uid('study_instance_uid'),
          { name: 'series_number', type: 'integer', isNullable: true },
          text('modality', 16),
          text('series_description', 128),
          { name: 'created_at', type: ts },
        ],
        indices: [new TableIndex({ columnNames: ['study_instance_uid'] })],
      }),
    );
    await q.createTable(
      new Table({
        name: 'instances',
        columns: [
          uid('sop_instance_uid', true),
          uid('sop_class_uid'),
          uid('transfer_syntax_uid'),
          uid('study_instance_uid'),
          uid('series_instance_uid'),
          { name: 'instance_number', type: 'integer', isNullable: true },
          text('path', 512, false),
          { name: 'size', type: 'bigint' },
          text('state', 16, false),
          text('source', 16, false),
          text('calling_ae', 16),
          { name: 'received_at', type: ts },
          { name: 'archived_at', type: ts, isNullable: true },
          { name: 'header', type: 'text' },
        ],
        indices: [
          new TableIndex({ columnNames: ['study_instance_uid'] }),
          new TableIndex({ columnNames: ['series_instance_uid'] }),
          new TableIndex({ columnNames: ['state'] }),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'associations',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          text('calling_ae', 16, false),
          text('called_ae', 16, false),
          text('remote_address', 64, false),
          { name: 'accepted', type: 'boolean' },
          text('reject_reason', 256),
          { name: 'started_at', type: ts },
          { name: 'ended_at', type: ts },
          { name: 'duration_ms', type: 'integer' },
          { name: 'instances_received', type: 'integer' },
          { name: 'bytes_received', type: 'bigint' },
          { name: 'failures', type: 'integer' },
          { name: 'aborted', type: 'boolean' },
        ],
        indices: [new TableIndex({ columnNames: ['started_at'] })],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of ['associations', 'instances', 'series', 'studies', 'patients']) await q.dropTable(t);
  }
}
