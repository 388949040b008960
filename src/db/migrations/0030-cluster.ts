import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';

/** The node registry and the cluster's leases (issue 16). Portable: the Table API. */
export class Cluster1763900000030 implements MigrationInterface {
  name = 'Cluster1763900000030';

  async up(q: QueryRunner): Promise<void> {
    const ts = q.connection.options.type === 'postgres' ? 'timestamptz' : 'datetime';
    await q.createTable(
      new Table({
        name: 'cluster_nodes',
        columns: [
          { name: 'id', type: 'varchar', length: '64', isPrimary: true },
          { name: 'host', type: 'varchar', length: '255' },
          { name: 'pid', type: 'integer' },
          { name: 'version', type: 'varchar', length: '32' },
          { name: 'ae_title', type: 'varchar', length: '16' },
          { name: 'started_at', type: ts },
          { name: 'heartbeat_at', type: ts },
          { name: 'stopped_at', type: ts, isNullable: true },
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'cluster_leases',
        columns: [
          { name: 'name', type: 'varchar', length: '64', isPrimary: true },
          { name: 'holder', type: 'varchar', length: '64' },
          { name: 'expires_at', type: 'bigint' },
          { name: 'runs', type: 'integer', default: 0 },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('cluster_leases');
    await q.dropTable('cluster_nodes');
  }
}
