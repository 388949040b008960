/** Owns `scannode import PATH [--move]` and `scannode import --retry ID`: one-shot imports with a progress bar. */
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
import { DATA_DIRS } from './domain/paths.js';
import { textOfName } from './domain/fileNames.js';
import { importPathRefusal } from './domain/importRules.js';

export interface ImportCommandOptions {
  /** Remove the source files once archived (default: keep them). */
  move?: boolean;
  out?: NodeJS.WriteStream;
  err?: NodeJS.WritableStream;
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

/** Why a path may not be imported (inside the data directory, other than its inbox), or undefined. */
function refusal(loaded: LoadedConfig, real: string): string | undefined {
  fs.mkdirSync(path.join(loaded.dataDir, DATA_DIRS.inbox), { recursive: true });
  const dataDir = fs.realpathSync(loaded.dataDir);
  return importPathRefusal(real, dataDir, fs.realpathSync(path.join(dataDir, DATA_DIRS.inbox)));
}

/**
 * `scannode import PATH`: a one-shot import of any file or folder outside the data directory (or in its inbox/),
 * through the same pipeline as the daemon (it can run beside a running daemon: SQLite WAL, no-overwrite moves).
 * Returns the exit code.
 */
export async function runImportCommand(
  loaded: LoadedConfig,
  target: string,
  opts: ImportCommandOptions = {},
): Promise<number> {
  const err = opts.err ?? process.stderr;
  let real: string;
  try {
    real = fs.realpathSync(path.resolve(target));
  } catch {
    err.write(`${target}: no such file or folder\n`);
    return 2;
  }
  const why = refusal(loaded, real);
  if (why) {
    err.write(`refused: ${why}\n`);
    return 2;
  }
  return withImporter(loaded, opts, (importer, onProgress) =>
    importer.importPath(
      {
        path: textOfName(real),
        baseDir: textOfName(path.dirname(real)),
        name: path.basename(real),
        source: 'cli',
        keepSources: !opts.move,
      },
      onProgress,
    ),
  );
}

/** `scannode import --retry ID`: another attempt of a failed, retrying or interrupted batch, in this process. */
export async function runImportRetry(
  loaded: LoadedConfig,
  id: string,
  opts: ImportCommandOptions = {},
): Promise<number> {
  const err = opts.err ?? process.stderr;
  let refused: { message: string; code: number } | undefined;
  const code = await withImporter(loaded, opts, async (importer, onProgress) => {
    const r = await importer.retry(id, { cli: true, onProgress });
    if ('refused' in r) {
      refused = { message: r.refused, code: r.status === 404 ? 2 : 1 };
      return undefined;
    }
    if (r.done) return r.done;
    (opts.out ?? process.stdout).write(`import ${id}: taken again by the running node at its next inbox scan\n`);
    return undefined;
  });
  if (refused) {
    err.write(`${refused.message}\n`);
    return refused.code;
  }
  return code;
}

async function withImporter(
  loaded: LoadedConfig,
  opts: ImportCommandOptions,
  go: (importer: Importer, onProgress: (c: ImportCounts) => void) => Promise<ImportBatchRow | undefined>,
): Promise<number> {
  const out = opts.out ?? process.stdout;
  const { config, dataDir } = loaded;
  const log = createLogger({ level: config.log.level === 'debug' ? 'debug' : 'warn', file: config.log.file });
  const db = await openDatabase(config.database, dataDir);
  let ingest: Ingest | undefined;
  try {
    // Never Ingest.recover() here: a running daemon's spool files in flight must be left alone.
    ingest = new Ingest(db, dataDir, log, { onConflict: config.dicom.onConflict });
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
    const row = await go(importer, onProgress);
    bar?.stop();
    if (!row) return 0;
    out.write(`${summary(row, (Date.now() - t0) / 1000)}\n`);
    return row.state === 'finished' ? 0 : 1;
  } finally {
    await ingest?.close();
    await db.close();
  }
}
