import { TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** NiDB-style grouping (completion.grouping 'nidb'): the group key of a study and of a series. Portable: Table API. */
export class Grouping1763900000006 implements MigrationInterface {
  name = 'Grouping1763900000006';

  async up(q: QueryRunner): Promise<void> {
    const col = () => new TableColumn({ name: 'group_key', type: 'varchar', length: '400', isNullable: true });
    await q.addColumn('studies', col());
    await q.addColumn('series', col());
    await q.createIndex('studies', new TableIndex({ name: 'IDX_studies_group_key', columnNames: ['group_key'] }));
    await q.createIndex('series', new TableIndex({ name: 'IDX_series_group_key', columnNames: ['group_key'] }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex('series', 'IDX_series_group_key');
    await q.dropIndex('studies', 'IDX_studies_group_key');
    await q.dropColumn('series', 'group_key');
    await q.dropColumn('studies', 'group_key');
  }
}
