import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configSchema } from '../../src/config/schema.js';
import type { LoadedConfig } from '../../src/config/load.js';
import { ScannodeNode } from '../../src/main.js';
import { createLogger } from '../../src/logging/logger.js';
import { PG_URL, dropSchema, newSchema, type DbKind } from './db.js';

export interface TestNode {
  node: ScannodeNode;
  port: number;
  dataDir: string;
  dir: string;
  kind: DbKind;
  /** Restart the same node (same dataDir and database), e.g. after a simulated crash. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** Stop and remove everything it made (schema, temp dir). */
  destroy(): Promise<void>;
  instances(): Promise<
    Array<{ sopInstanceUid: string; path: string; state: string; seriesInstanceUid: string; size: number }>
  >;
}

export interface TestNodeOptions {
  kind?: DbKind;
  dicom?: Record<string, unknown>;
  dataDir?: string;
  extra?: Record<string, unknown>;
  /** Injected clock for completion (fake time in tests). */
  now?: () => Date;
}

export async function startTestNode(opts: TestNodeOptions = {}): Promise<TestNode> {
  const kind = opts.kind ?? 'sqlite';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-test-'));
  const dataDir = opts.dataDir ?? path.join(dir, 'data');
  const schema = kind === 'postgres' ? newSchema() : undefined;
  const raw = {
    dicom: { host: '127.0.0.1', port: 0, shutdownGraceSeconds: 2, ...opts.dicom },
    dataDir,
    database:
      kind === 'postgres'
        ? { type: 'postgres', url: PG_URL, schema }
        : { type: 'sqlite', path: path.join(dir, 'db.sqlite') },
    http: { port: 0 },
    log: { level: process.env.SCANNODE_TEST_LOG ?? 'error' },
    // The reconcile scheduler talks to a scanner: off unless a test asks for it (extra.scheduler).
    scheduler: { enabled: false },
    ...opts.extra,
  };
  const config = configSchema.parse(raw);
  const loaded: LoadedConfig = { file: path.join(dir, 'config.json'), config, dataDir };
  const logger = createLogger({ level: config.log.level, file: path.join(dir, 'scannode.log') });
  let node = new ScannodeNode(loaded, { logger, now: opts.now });
  await node.start();
  let port = node.dicom.address().port;
  const t: TestNode = {
    get node() {
      return node;
    },
    get port() {
      return port;
    },
    dataDir,
    dir,
    kind,
    async restart() {
      await node.stop();
      node = new ScannodeNode(
        { ...loaded, config: { ...config, dicom: { ...config.dicom, port } } },
        { logger, now: opts.now },
      );
      await node.start();
      port = node.dicom.address().port;
    },
    async stop() {
      await node.stop();
    },
    async destroy() {
      await node.stop();
      if (schema) await dropSchema(schema).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    async instances() {
      const db = node.db;
      const rows = await db.source.getRepository(db.entities.Instance).find({ order: { sopInstanceUid: 'ASC' } });
      return rows.map((r) => ({
        sopInstanceUid: r.sopInstanceUid,
        path: r.path,
        state: r.state,
        seriesInstanceUid: r.seriesInstanceUid,
        size: r.size,
      }));
    },
  };
  return t;
}
