import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * The settings every node of a cluster must share, as each node started with them, and each node's open associations
 * at its last heartbeat (issue 16). Portable.
 */
export class ClusterSettings1763900000034 implements MigrationInterface {
  name = 'ClusterSettings1763900000034';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumns('cluster_nodes', [
      new TableColumn({ name: 'settings', type: 'text', isNullable: true }),
      new TableColumn({ name: 'associations', type: 'integer', default: 0 }),
    ]);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('cluster_nodes', 'associations');
    await q.dropColumn('cluster_nodes', 'settings');
  }
}
