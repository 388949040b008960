import fs from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import type { LoadedConfig } from './config/load.js';
import { openDatabase } from './db/dataSource.js';
import { createLogger } from './logging/logger.js';
import { Ingest } from './pipeline/ingest.js';
import { Archiver } from './pipeline/archive.js';
import { Importer, type ImportCounts } from './pipeline/importer.js';
import type { ImportBatchRow } from './db/importEntities.js';

export interface ImportCommandOptions {
  /** Remove the source files once archived (default: keep them). */
  move?: boolean;
  out?: NodeJS.WriteStream;
}

/** NiDB's closing "Performance metrics" block. */
export function summary(row: ImportBatchRow, seconds: number): string {
  const rate = row.bytes / Math.max(seconds, 0.001);
  return [
    `Import ${row.name} (${row.id}): ${row.state}${row.message ? ` - ${row.message}` : ''}`,
    `Elapsed time: ${seconds.toFixed(1)}s`,
    `FilesFound [${row.filesFound}]  FilesRead [${row.filesRead}]  FilesArchived [${row.archived}]  FilesIgnored [${row.duplicates}]  FilesError [${row.problems + row.errors}]`,
    `Read rate: Bytes/Sec [${Math.round(rate)}] (${(rate / 1e6).toFixed(1)} MB/s, ${(row.filesRead / Math.max(seconds, 0.001)).toFixed(1)} files/s)`,
    ...(row.problems ? [`Problems: ${row.problems} file(s) in problem/ with a .reason.txt beside each`] : []),
  ].join('\n');
}

/**
 * `scannode import PATH`: a one-shot import of any file or folder, through the same pipeline as the daemon (it can run
 * beside a running daemon: SQLite WAL, no-overwrite moves). Returns the exit code.
 */
export async function runImportCommand(
  loaded: LoadedConfig,
  target: string,
  opts: ImportCommandOptions = {},
): Promise<number> {
  const out = opts.out ?? process.stdout;
  const abs = path.resolve(target);
  if (!fs.existsSync(abs)) {
    process.stderr.write(`${target}: no such file or folder\n`);
    return 2;
  }
  const { config, dataDir } = loaded;
  const log = createLogger({ level: config.log.level === 'debug' ? 'debug' : 'warn', file: config.log.file });
  const db = await openDatabase(config.database, dataDir);
  try {
    // Never Ingest.recover() here: a running daemon's spool files in flight must be left alone.
    const ingest = new Ingest(db, dataDir, log, { onConflict: config.dicom.onConflict });
    const importer = new Importer(db, ingest, new Archiver(db, dataDir, log), dataDir, log, {
      concurrency: config.import.concurrency,
    });
    const tty = Boolean(out.isTTY);
    const bar = tty
      ? new cliProgress.SingleBar(
          {
            format:
              'import |{bar}| {value}/{total} files | archived {archived} dup {duplicates} problems {problems} | {eta_formatted}',
            stream: out,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    let started = false;
    let lastLine = 0;
    const onProgress = (c: ImportCounts) => {
      const done = c.filesRead + c.problems + c.errors;
      if (bar) {
        if (!started) bar.start(c.filesFound, 0, c);
        started = true;
        bar.setTotal(c.filesFound);
        bar.update(done, c);
      } else if (Date.now() - lastLine > 2000) {
        lastLine = Date.now();
        out.write(
          `${done}/${c.filesFound} files, ${c.archived} archived, ${c.duplicates} duplicates, ${c.problems} problems\n`,
        );
      }
    };
    const t0 = Date.now();
    const row = await importer.importPath(
      {
        path: abs,
        baseDir: path.dirname(abs),
        name: path.basename(abs),
        source: 'cli',
        keepSources: !opts.move,
      },
      onProgress,
    );
    bar?.stop();
    out.write(`${summary(row, (Date.now() - t0) / 1000)}\n`);
    return row.state === 'finished' ? 0 : 1;
  } finally {
    await db.close();
  }
}
