/** Owns `scannode nodes`: the cluster's nodes from the registry, one line each, the scheduler's node marked. */
import type { Database } from './db/dataSource.js';
import { clusterView, type ClusterView } from './db/clusterStore.js';

export function nodeLines(view: ClusterView): string[] {
  if (!view.nodes.length) return ['no nodes registered'];
  return [
    ...view.nodes.map(
      (n) =>
        `${n.scheduler ? '*' : ' '} ${n.id.padEnd(20)} ${n.state.padEnd(7)} ${n.host}:${n.pid}  v${n.version}  ` +
        `heartbeat ${n.heartbeatAgeSeconds} s ago  started ${n.startedAt}`,
    ),
    `* runs the scheduler; ${view.passes} reconcile pass(es) in the cluster`,
  ];
}

export async function runNodesCommand(db: Database, leaseSeconds: number, out: NodeJS.WritableStream): Promise<void> {
  const view = await clusterView(db, Date.now(), leaseSeconds * 1000);
  for (const line of nodeLines(view)) out.write(`${line}\n`);
}
