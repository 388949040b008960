/**
 * Owns waking the scheduler's node from another node: PostgreSQL NOTIFY on a channel of the cluster's schema, and one
 * LISTEN connection per node. An image or N-SET received by a node that does not run the scheduler thus starts the
 * pass on the node that does, as soon as it would have started there. On SQLite (one node) there is nobody to wake.
 */
import pg from 'pg';
import type { Logger } from '../logging/logger.js';

export interface Wake {
  /** Tells the scheduler's node to run a pass soon. */
  publish(): Promise<void>;
  close(): Promise<void>;
}

export const noWake: Wake = { publish: async () => undefined, close: async () => undefined };

/** The channel of one cluster: nodes on another schema of the same server are another cluster. */
export function wakeChannel(schema: string | undefined): string {
  return `scannode_wake_${schema ?? 'public'}`;
}

/**
 * Listens on the cluster's channel and calls `onWake` for each notification from another node. A lost listening
 * connection is opened again after `retryMs`; meanwhile the cron tick is the safety net.
 */
export async function pgWake(
  url: string,
  schema: string | undefined,
  nodeId: string,
  onWake: () => void,
  log: Logger,
  retryMs = 2000,
): Promise<Wake> {
  const channel = wakeChannel(schema);
  let client: pg.Client | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url });
    c.on('notification', (n) => {
      if (n.payload !== nodeId) onWake();
    });
    c.on('error', (err) => {
      log.warn('cluster wake-up connection lost', { err: String(err) });
      void c.end().catch(() => undefined);
      if (client === c) client = undefined;
      if (!closed) retry = setTimeout(() => void connect().catch(() => undefined), retryMs).unref();
    });
    await c.connect();
    await c.query(`LISTEN ${channel}`);
    client = c;
  };
  await connect();
  return {
    publish: async () => {
      const c = client;
      if (c) await c.query('SELECT pg_notify($1, $2)', [channel, nodeId]);
    },
    close: async () => {
      closed = true;
      if (retry) clearTimeout(retry);
      await client?.end().catch(() => undefined);
      client = undefined;
    },
  };
}
