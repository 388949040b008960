import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/** A scan names the remote it is retrieved from (issue 15); null: the scanner. Portable: the Table API. */
export class ScanRemote1763900000032 implements MigrationInterface {
  name = 'ScanRemote1763900000032';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('scans', new TableColumn({ name: 'remote', type: 'varchar', length: '64', isNullable: true }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('scans', 'remote');
  }
}
