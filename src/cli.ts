#!/usr/bin/env node
import './threadpool.js';
import { Command, Option } from 'commander';
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig, type LoadedConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { ScannodeNode } from './main.js';
import { echo, parsePeer } from './dimse/echo.js';
import { openDatabase, type Database } from './db/dataSource.js';
import { SCAN_STATES } from './db/scanEntities.js';
import { createLogger } from './logging/logger.js';
import { ScanRequests } from './pipeline/scans/scanRequests.js';
import { describeScan, listScans, type ScanView } from './db/scanViews.js';
import { makeRequest } from './domain/scanRequest.js';
import { sourceRemoteProblem } from './pipeline/remoteDirectory.js';
import { isSchedulerPaused, schedulerPausedSince, setSchedulerPaused } from './scheduler/pauseFlag.js';
import { runImportCommand, runImportRetry } from './importCommand.js';
import { runReindex } from './reindexCommand.js';
import { runNodesCommand } from './nodesCommand.js';
import { runRemotesCommand } from './remotesCommand.js';
import { VERSION } from './version.js';
import { notifyReady } from './systemd.js';

const EXIT_RUNTIME = 1;
const EXIT_USAGE = 2;

function configOption() {
  return new Option('-c, --config <file>', 'config file').env('SCANNODE_CONFIG').default(DEFAULT_CONFIG_FILE);
}

function load(file: string): LoadedConfig {
  try {
    return loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(EXIT_USAGE);
    }
    throw err;
  }
}

const program = new Command('scannode')
  .description('A DICOM network node: receives, tracks, pulls and archives what the scanner produces.')
  .version(VERSION, '-V, --version', 'print the version')
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE))
  .showHelpAfterError();

program
  .command('start')
  .description('run the node (DICOM listener, scheduler, HTTP)')
  .addOption(configOption())
  .action(async (opts: { config: string }) => {
    const loaded = load(opts.config);
    const node = new ScannodeNode(loaded);
    let signals = 0;
    const onSignal = (sig: string) => {
      signals++;
      if (signals > 1) {
        node.log.warn(`second ${sig}: exiting at once`);
        process.exit(EXIT_RUNTIME);
      }
      node.log.info(`${sig}: shutting down (send again to exit at once)`);
      node.stop().then(
        () => process.exit(0),
        () => process.exit(EXIT_RUNTIME),
      );
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
    try {
      await node.start();
    } catch (err) {
      node.log.error('cannot start', { err: err instanceof Error ? err.message : String(err) });
      await node.stop();
      process.exit(EXIT_RUNTIME);
    }
    // Under systemd (Type=notify): ready only now, with the DICOM port listening. A signal that arrived during the
    // start has closed the listeners already: nothing to report then.
    if (signals > 0 || !node.dicom?.listening) return;
    const http = node.http?.server.address();
    const status = `scannode ${VERSION}: ${loaded.config.dicom.aeTitle} on DICOM port ${node.dicom.address().port}, HTTP port ${typeof http === 'object' && http ? http.port : '-'}`;
    await notifyReady(node.log, status);
  });

const config = program.command('config').description('configuration');
config
  .command('check')
  .description('validate the config and print the effective values (defaults and env overrides applied)')
  .addOption(configOption())
  .action((opts: { config: string }) => {
    const loaded = load(opts.config);
    const { config } = loaded;
    // Secrets are shown as set, not printed: the output ends up in tickets and terminals.
    const shown = {
      file: loaded.file,
      ...config,
      dataDir: loaded.dataDir,
      http: { ...config.http, ...(config.http.token && { token: '(set, hidden)' }) },
      database: {
        ...config.database,
        ...('url' in config.database && config.database.url && { url: hidePassword(config.database.url) }),
      },
    };
    process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
  });

program
  .command('echo')
  .description('C-ECHO a DICOM node')
  .argument('<peer>', 'AET@HOST:PORT')
  .option('--aet <aet>', 'our calling AE title (default: dicom.aeTitle of the config)')
  .addOption(configOption())
  .action(async (spec: string, opts: { aet?: string; config: string }) => {
    let peer;
    try {
      peer = parsePeer(spec);
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(EXIT_USAGE);
    }
    let aet = opts.aet;
    if (!aet) {
      try {
        aet = loadConfig(opts.config).config.dicom.aeTitle;
      } catch {
        aet = 'SCANNODE';
      }
    }
    try {
      const ms = await echo(peer, aet);
      process.stdout.write(`C-ECHO ${spec}: success (${ms} ms)\n`);
    } catch (err) {
      process.stderr.write(`C-ECHO ${spec}: ${(err as Error).message}\n`);
      process.exit(EXIT_RUNTIME);
    }
  });

// -- scan requests: open the database of the config directly; a running node picks the new file up --------------

/** For `scan add`: the request side (row and file), not started, so no watcher runs here. */
async function withScans<T>(configFile: string, fn: (scans: ScanRequests, config: Config) => Promise<T>): Promise<T> {
  return withDb(configFile, (db, loaded) => {
    const log = createLogger({ level: loaded.config.log.level === 'debug' ? 'debug' : 'warn' });
    return fn(new ScanRequests(db, loaded.dataDir, log), loaded.config);
  });
}

function when(d: Date | null | undefined): string {
  return d ? new Date(d).toISOString() : '-';
}

function scanLine(v: ScanView): string {
  const expected = v.series.reduce((n, s) => n + s.expected, 0);
  const received = v.series.reduce((n, s) => n + s.received, 0);
  const what =
    v.studyInstanceUid ??
    `(unresolved: ${v.accessionNumber ? `accession ${v.accessionNumber}` : v.patientId ? `patient ${v.patientId}${v.studyDate ? ` ${v.studyDate}` : ''}` : `mpps ${v.mppsUid}`})`;
  return `${v.state.padEnd(9)} ${what}  mpps=${v.mppsStatus ?? '-'} series=${v.series.length} expected=${expected} received=${received} requested=${when(v.requestedAt)}`;
}

const scan = program.command('scan').description('scan requests (active-scans/)');
scan
  .command('add')
  .description('request a scan by StudyInstanceUID, accession number or patient')
  .argument('[studyUid]', 'StudyInstanceUID')
  .option('--accession <n>', 'accession number (resolved to studies by the scheduler)')
  .option('--patient <id>', 'patient ID (resolved to studies by the scheduler)')
  .option('--date <yyyymmdd>', 'study date, with --patient')
  .option('--remote <name>', 'the remote to retrieve from (default: the scanner)')
  .addOption(configOption())
  .action(
    async (
      studyUid: string | undefined,
      opts: { accession?: string; patient?: string; date?: string; remote?: string; config: string },
    ) => {
      const given = [studyUid, opts.accession, opts.patient].filter((v) => v !== undefined);
      const usage = (msg: string) => {
        process.stderr.write(`${msg}\n`);
        process.exit(EXIT_USAGE);
      };
      if (given.length !== 1) usage('give exactly one of STUDY_UID, --accession N, --patient ID');
      if (opts.date && !opts.patient) usage('--date goes with --patient');
      const parsed = makeRequest({
        studyInstanceUid: studyUid ?? null,
        accessionNumber: opts.accession ?? null,
        patientId: opts.patient ?? null,
        studyDate: opts.date ?? null,
        remote: opts.remote ?? null,
      });
      if (!parsed.ok) return usage(parsed.reason);
      await withScans(opts.config, async (scans, config) => {
        const problem = sourceRemoteProblem(config.remotes, config.scanner.name, parsed.spec.remote);
        if (problem) return usage(problem);
        const { scan: row, created } = await scans.add(parsed.spec, 'cli');
        process.stdout.write(
          `${created ? 'requested' : 'already requested'}: ${row.fileName ? `active-scans/${row.fileName}` : row.id}\n`,
        );
      });
    },
  );

scan
  .command('list')
  .description('list scan requests')
  .addOption(new Option('--state <state>', 'only this state').choices(SCAN_STATES))
  .addOption(configOption())
  .action(async (opts: { state?: (typeof SCAN_STATES)[number]; config: string }) => {
    await withDb(opts.config, async (db) => {
      const views = await listScans(db, opts.state);
      for (const v of views) process.stdout.write(`${scanLine(v)}\n`);
      if (!views.length) process.stdout.write('no scans\n');
    });
  });

scan
  .command('show')
  .description('one scan request: per series expected (MPPS) and received counts, MPPS status, timestamps')
  .argument('<uid>', 'StudyInstanceUID (or scan id)')
  .addOption(configOption())
  .action(async (uid: string, opts: { config: string }) => {
    const found = await withDb(opts.config, async (db) => {
      const v = await describeScan(db, uid);
      if (!v) return false;
      const out = [
        `study:        ${v.studyInstanceUid ?? '(not known yet)'}`,
        `state:        ${v.state}${v.reason ? ` (${v.reason})` : ''}`,
        `source:       ${v.source}`,
        `accession:    ${v.accessionNumber ?? '-'}`,
        `patient:      ${v.patientId ?? '-'}${v.studyDate ? ` date ${v.studyDate}` : ''}`,
        `file:         ${v.fileName ? `active-scans/${v.fileName}` : '-'}`,
        `requested:    ${when(v.requestedAt)}`,
        `updated:      ${when(v.updatedAt)}`,
        `completed:    ${when(v.completedAt)}`,
        `mpps status:  ${v.mppsStatus ?? '-'}`,
        ...v.mpps.map(
          (m) =>
            `  mpps ${m.sopInstanceUid} ${m.status} start=${m.startDate ?? ''}${m.startTime ? ` ${m.startTime}` : ''} end=${m.endDate ?? ''}${m.endTime ? ` ${m.endTime}` : ''}`,
        ),
        `series:       ${v.series.length}`,
        ...v.series.map(
          (s) =>
            `  ${String(s.seriesNumber ?? '-').padStart(4)} ${(s.modality ?? '-').padEnd(3)} ${s.seriesInstanceUid}  expected=${s.expected} received=${s.received}${s.expected ? ` (of expected: ${s.receivedExpected})` : ''}  ${s.seriesDescription ?? ''}`,
        ),
      ];
      process.stdout.write(`${out.join('\n')}\n`);
      return true;
    });
    if (!found) {
      process.stderr.write(`no scan request for ${uid}\n`);
      process.exit(EXIT_RUNTIME);
    }
  });

// -- scheduler: a flag in the database that a running node reads on every tick, so no restart is needed ----------

async function withDb<T>(configFile: string, fn: (db: Database, loaded: LoadedConfig) => Promise<T>): Promise<T> {
  const loaded = load(configFile);
  let db;
  try {
    db = await openDatabase(loaded.config.database, loaded.dataDir);
  } catch (err) {
    process.stderr.write(`cannot open the database: ${(err as Error).message}\n`);
    process.exit(EXIT_RUNTIME);
  }
  try {
    return await fn(db, loaded);
  } catch (err) {
    await db.close();
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(EXIT_RUNTIME);
  } finally {
    await db.close(); // close() is a no-op once closed
  }
}

function configPausedNote(loaded: LoadedConfig): string {
  return loaded.config.scheduler.enabled
    ? ''
    : `note: scheduler.enabled is false in ${loaded.file}: a node started with it stays paused until restarted with it true\n`;
}

program
  .command('remotes')
  .description('the named DICOM nodes of the config (the scanner marked *); --echo C-ECHOes each')
  .option('--echo', 'C-ECHO each remote (exit code 1 when one does not answer)')
  .addOption(configOption())
  .action(async (opts: { echo?: boolean; config: string }) => {
    const ok = await runRemotesCommand(load(opts.config).config, !!opts.echo, process.stdout);
    if (!ok) process.exit(EXIT_RUNTIME);
  });

program
  .command('nodes')
  .description('the nodes of the cluster (alive, stopped, dead) and which one runs the scheduler')
  .addOption(configOption())
  .action(async (opts: { config: string }) => {
    await withDb(opts.config, (db, loaded) => runNodesCommand(db, loaded.config.cluster.leaseSeconds, process.stdout));
  });

const scheduler = program.command('scheduler').description('pause or resume the reconcile scheduler of running nodes');
scheduler
  .command('pause')
  .description('pause: running nodes skip their ticks and triggers from the next tick on (the run going finishes)')
  .addOption(configOption())
  .action(async (opts: { config: string }) => {
    await withDb(opts.config, async (db) => {
      await setSchedulerPaused(db, true);
      process.stdout.write('scheduler paused\n');
    });
  });
scheduler
  .command('resume')
  .description('resume after `scheduler pause`, from the next tick on')
  .addOption(configOption())
  .action(async (opts: { config: string }) => {
    await withDb(opts.config, async (db, loaded) => {
      await setSchedulerPaused(db, false);
      process.stdout.write(`scheduler resumed\n${configPausedNote(loaded)}`);
    });
  });
scheduler
  .command('status')
  .description('whether the scheduler is paused, since when, and its schedule')
  .addOption(configOption())
  .action(async (opts: { config: string }) => {
    await withDb(opts.config, async (db, loaded) => {
      const flag = await isSchedulerPaused(db);
      const since = await schedulerPausedSince(db);
      const { enabled, cron } = loaded.config.scheduler;
      process.stdout.write(
        [
          `paused:   ${flag || !enabled ? 'yes' : 'no'}`,
          `  cli:    ${since ? `${flag ? 'paused' : 'resumed'} ${when(since)}` : 'never paused'}`,
          `  config: scheduler.enabled=${String(enabled)}`,
          `cron:     ${cron}`,
        ].join('\n') + '\n',
      );
    });
  });

program
  .command('import')
  .description(
    'one-shot import of a file or folder tree (outside the data directory, or in its inbox/): archived, or problem/ with a reason; --retry ID resumes a failed batch',
  )
  .argument('[path]', 'file or folder')
  .option('--move', 'remove the source files once archived (default: keep them)')
  .option('--retry <id>', 'another attempt of a failed, retrying or interrupted import batch (see GET /api/imports)')
  .addOption(configOption())
  .action(async (target: string | undefined, opts: { move?: boolean; retry?: string; config: string }) => {
    if ((target === undefined) === (opts.retry === undefined) || (opts.retry && opts.move)) {
      process.stderr.write('give a PATH to import (with --move or not), or --retry ID\n');
      process.exit(EXIT_USAGE);
    }
    const loaded = load(opts.config);
    try {
      process.exitCode = opts.retry
        ? await runImportRetry(loaded, opts.retry)
        : await runImportCommand(loaded, target!, { move: opts.move });
    } catch (err) {
      process.stderr.write(`import failed: ${(err as Error).message}\n`);
      process.exit(EXIT_RUNTIME);
    }
  });

program
  .command('reindex')
  .description('rebuild the index from the files: site/raw (the archive) and incoming/ (the spool)')
  .addOption(configOption())
  .action(async (opts: { config: string }) => {
    const loaded = load(opts.config);
    try {
      process.exitCode = await runReindex(loaded);
    } catch (err) {
      process.stderr.write(`reindex failed: ${(err as Error).message}\n`);
      process.exit(EXIT_RUNTIME);
    }
  });

await program.parseAsync(process.argv);

/** postgres://user:secret@host/db -> postgres://user:***@host/db */
function hidePassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}
