import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * The PID namespace of each node's process (issue 16): on one host name, containers on the host network share the
 * name but not their pids (every container's node may be pid 7), so a node's pid says whether it still runs only to
 * a node of the same namespace. Null: a row from before, or a system without namespaces. Portable.
 */
export class NodePidNamespace1763900000036 implements MigrationInterface {
  name = 'NodePidNamespace1763900000036';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(
      'cluster_nodes',
      new TableColumn({ name: 'pid_namespace', type: 'varchar', length: '64', isNullable: true }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('cluster_nodes', 'pid_namespace');
  }
}
