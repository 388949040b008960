import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/** The settings every node of a cluster must share, as each node started with them (issue 16). Portable. */
export class ClusterSettings1763900000034 implements MigrationInterface {
  name = 'ClusterSettings1763900000034';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('cluster_nodes', new TableColumn({ name: 'settings', type: 'text', isNullable: true }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('cluster_nodes', 'settings');
  }
}
