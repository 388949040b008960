// Import test helpers: batches as the database has them, sendit-style drops into the inbox, archive paths, the CLI.
import fs from 'node:fs';
import path from 'node:path';
import type { TestNode } from './node.js';
import type { GeneratedInstance } from './dicomgen.js';
import type { ImportBatchRow } from '../../src/db/importEntities.js';

/** Every import batch, oldest first. */
export async function batches(t: TestNode): Promise<ImportBatchRow[]> {
  const db = t.node.db;
  return db.source.getRepository(db.entities.ImportBatch).find({ order: { startedAt: 'ASC' } });
}

export async function batch(t: TestNode, id: string): Promise<ImportBatchRow> {
  const db = t.node.db;
  return (await db.source.getRepository(db.entities.ImportBatch).findOneBy({ id }))!;
}

/** Copies `files` into inbox/<name> the sendit way: written as <name>.tmp, then renamed. */
export function drop(node: TestNode, name: string, files: GeneratedInstance[]): void {
  const tmp = path.join(node.dataDir, 'inbox', `${name}.tmp`);
  fs.mkdirSync(tmp, { recursive: true });
  for (const g of files) fs.copyFileSync(g.file, path.join(tmp, path.basename(g.file)));
  fs.renameSync(tmp, path.join(node.dataDir, 'inbox', name));
}

/** Where an instance is archived: site/raw/<Study>/<Series>/<SOP>.dcm. */
export function archivedFile(node: TestNode, g: GeneratedInstance): string {
  return path.join(node.dataDir, 'site', 'raw', g.studyInstanceUid, g.seriesInstanceUid, `${g.sopInstanceUid}.dcm`);
}

/** Imports a folder in the node's process as `scannode import` would (sources kept). */
export function importKeeping(node: TestNode, dir: string): Promise<ImportBatchRow> {
  return node.node.importer.importPath({
    path: dir,
    baseDir: path.dirname(dir),
    name: path.basename(dir),
    source: 'cli',
    keepSources: true,
  });
}

/** A config file for the CLI beside a test node (same dataDir; its SQLite database unless another is named). */
export function cliConfig(node: TestNode, dbFile = path.join(node.dir, 'db.sqlite')): string {
  const cfg = path.join(node.dir, `cli-${path.basename(dbFile)}.json`);
  fs.writeFileSync(
    cfg,
    JSON.stringify({ dataDir: node.dataDir, database: { type: 'sqlite', path: dbFile }, log: { level: 'error' } }),
  );
  return cfg;
}
