/** `scannode reindex`: the index rebuilt from the files (after losing the database, or to check it). */
import fs from 'node:fs';
import type { LoadedConfig } from './config/load.js';
import { openDatabase } from './db/dataSource.js';
import { createLogger } from './logging/logger.js';
import { Ingest } from './pipeline/ingest.js';
import { Archiver } from './pipeline/archive.js';
import { ArchiveRecovery } from './pipeline/archiveRecovery.js';

/**
 * The spool's recovery (a spool file without its row is indexed), then the archive's: rows still pointing to the
 * spool for files already archived are corrected, spool copies of archived instances removed, and every file under
 * site/raw without a row indexed. Only adds and corrects rows: it can run beside a running node. Returns the exit code.
 */
export async function runReindex(loaded: LoadedConfig, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { config, dataDir } = loaded;
  if (!fs.existsSync(dataDir)) {
    process.stderr.write(`dataDir ${dataDir} does not exist (is it mounted?)\n`);
    return 1;
  }
  const log = createLogger({ level: config.log.level === 'debug' ? 'debug' : 'warn', file: config.log.file });
  const db = await openDatabase(config.database, dataDir);
  try {
    const started = Date.now();
    const ingest = new Ingest(db, dataDir, log, { onConflict: config.dicom.onConflict });
    const spool = await ingest.recover();
    await ingest.close();
    const recovery = new ArchiveRecovery(db, dataDir, log, new Archiver(db, dataDir, log));
    const quick = await recovery.quick();
    const tty = (out as { isTTY?: boolean }).isTTY;
    const walk = await recovery.walk((c) => {
      if (tty && c.studies % 20 === 0) out.write(`\r${c.studies} studies, ${c.files} files...`);
    });
    if (tty) out.write('\r');
    const missing = await recovery.rowsWithoutFile();
    out.write(
      [
        `spool:   ${spool.indexed} files indexed, ${spool.removed} unfinished transfers removed`,
        `archive: ${walk.studies} studies, ${walk.files} files; ${walk.indexed} indexed, ` +
          `${walk.healed + quick.healed} rows corrected, ${quick.spoolCopiesRemoved} spool copies removed, ` +
          `${walk.skipped} not indexed (see the log)`,
        `rows whose file is in neither place: ${missing}`,
        `done in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      ].join('\n') + '\n',
    );
    return 0;
  } finally {
    await db.close();
  }
}
