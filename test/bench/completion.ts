/**
 * The completion-latency measurement of issue 12 (not a test): how long after its last event a scan is in
 * finished-scans/, with dcmqrscp as the scanner and scannode in this process (default config apart from the ports).
 *
 *   node dist/test/bench/completion.js [--rounds N]
 *
 * (a) last image: the scanner's association stores all but one image, the MPPS is COMPLETED, then the last image
 *     arrives: from its C-STORE response to finished-scans/<StudyUID>.json. Target <= 1 s.
 * (b) pull: the scanner pushes part of the study and releases its association, then N-SET COMPLETED: from the N-SET
 *     response to finished-scans, and that minus the C-MOVE time (the retrieve attempts' durations). Target <= 1 s.
 * Medians over rounds; each round a new study, a new dcmqrscp and a new node. Everything on 127.0.0.1; every process
 * started here is stopped by its handle; the temp dir is removed at the end.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/logging/logger.js';
import { ScannodeNode } from '../../src/main.js';
import { startDcmqrscp, type DcmqrscpPeer } from '../helpers/dcmqrscp.js';
import { dulAssociate, type DulAssociation } from '../helpers/dulClient.js';
import { generateStudy, newUid, type GeneratedInstance } from '../helpers/dicomgen.js';
import { createDataset, nCreate, nSet, performedSeries } from '../helpers/mppsClient.js';
import { freePort, run } from '../helpers/peers.js';

const AE = 'SCANNODE';
const SCANNER = 'BENCHSCANNER';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const EXPLICIT = '1.2.840.10008.1.2.1';
const SERIES = 2;
const PER_SERIES = 20;
/** Images the scanner pushes in (b); the rest is pulled. */
const PUSHED = 5;
const TARGET_MS = 1000;

interface Round {
  dir: string;
  study: GeneratedInstance[];
  studyUid: string;
  qr: DcmqrscpPeer;
  node: ScannodeNode;
  port: number;
}

async function startRound(tmp: string, name: string): Promise<Round> {
  const dir = fs.mkdtempSync(path.join(tmp, `${name}-`));
  const study = generateStudy({ dir: path.join(dir, 'study'), series: SERIES, perSeries: PER_SERIES });
  const port = await freePort();
  const qr = await startDcmqrscp({
    aeTitle: SCANNER,
    destinations: [{ aeTitle: AE, port }],
    files: study.map((s) => s.file),
  });
  try {
    const dataDir = path.join(dir, 'data');
    const config = configSchema.parse({
      dicom: { host: '127.0.0.1', port, aeTitle: AE },
      dataDir,
      database: { type: 'sqlite', path: path.join(dir, 'db.sqlite') },
      http: { port: 0 },
      log: { level: 'warn' },
      scanner: { aeTitle: SCANNER, host: '127.0.0.1', port: qr.port },
    });
    const logger = createLogger({ level: 'warn', file: path.join(dir, 'scannode.log'), silent: true });
    const node = new ScannodeNode({ file: path.join(dir, 'config.json'), config, dataDir }, { logger });
    await node.start();
    return { dir, study, studyUid: study[0]!.studyInstanceUid, qr, node, port };
  } catch (err) {
    await qr.destroy();
    throw err;
  }
}

async function endRound(r: Round): Promise<void> {
  await r.node.stop();
  await r.qr.destroy();
}

/** Polls every 2 ms until finished-scans/<study>.json exists; the time it was seen (hrtime ms). */
async function finishedAt(r: Round, timeoutMs = 60_000): Promise<number> {
  const file = path.join(r.node.loaded.dataDir, 'finished-scans', `${r.studyUid}.json`);
  const failed = path.join(r.node.loaded.dataDir, 'failed-scans', `${r.studyUid}.json`);
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (fs.existsSync(failed)) throw new Error(`the scan failed: ${fs.readFileSync(failed, 'utf8')}`);
    if (Date.now() > deadline) throw new Error(`no finished-scans/${r.studyUid}.json after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 2));
  }
  return now();
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

async function mppsCompleted(r: Round): Promise<void> {
  const uid = newUid();
  const created = await nCreate(r.port, uid, createDataset({ studyInstanceUid: r.studyUid }));
  if (created.status !== 0) throw new Error(`N-CREATE status ${created.status}`);
  const done = { PerformedProcedureStepStatus: 'COMPLETED', PerformedSeriesSequence: performedSeries(r.study) };
  const set = await nSet(r.port, uid, done);
  if (set.status !== 0) throw new Error(`N-SET status ${set.status}`);
}

/** The data set of a Part 10 file (what a C-STORE carries). */
function datasetOf(file: string): Buffer {
  const b = fs.readFileSync(file);
  return b.subarray(144 + b.readUInt32LE(140));
}

async function store(a: DulAssociation, img: GeneratedInstance, id: number): Promise<void> {
  const command = {
    CommandField: 0x0001,
    MessageID: id,
    Priority: 0,
    AffectedSOPClassUID: MR,
    AffectedSOPInstanceUID: img.sopInstanceUid,
  };
  const rsp = await a.request(1, command, datasetOf(img.file));
  if (rsp.command.Status !== 0) throw new Error(`C-STORE status ${String(rsp.command.Status)}`);
}

/** (a): ms from the last image's C-STORE response to finished-scans. */
async function lastImage(tmp: string, round: number): Promise<number> {
  const r = await startRound(tmp, `last-${round}`);
  let a: DulAssociation | undefined;
  try {
    a = await dulAssociate({
      port: r.port,
      calledAe: AE,
      callingAe: SCANNER,
      contexts: [{ id: 1, abstractSyntax: MR, transferSyntaxes: [EXPLICIT] }],
    });
    const [last, ...rest] = [...r.study].reverse();
    let id = 0;
    for (const img of rest.reverse()) await store(a, img, ++id);
    await mppsCompleted(r);
    // Let the N-SET's pass run and settle (it waits: the scanner is still sending).
    await r.node.scheduler.runNow();
    await store(a, last!, ++id);
    const t0 = now();
    const t1 = await finishedAt(r);
    return t1 - t0;
  } finally {
    a?.abort();
    await endRound(r);
  }
}

/** (b): ms from the N-SET response to finished-scans, and the C-MOVE time inside it. */
async function pull(tmp: string, round: number): Promise<{ ms: number; moveMs: number; moves: number }> {
  const r = await startRound(tmp, `pull-${round}`);
  try {
    const pushed = r.study.slice(0, PUSHED).map((s) => s.file);
    const sent = await run('storescu', ['-aet', SCANNER, '-aec', AE, '127.0.0.1', String(r.port), ...pushed]);
    if (sent.code !== 0) throw new Error(`storescu exited ${sent.code}: ${sent.stderr}`);
    // The images' own quiet-window pass, so that only the N-SET's path is measured.
    await new Promise((res) => setTimeout(res, 500));
    await r.node.scheduler.runNow();
    await mppsCompleted(r);
    const t0 = now();
    const t1 = await finishedAt(r);
    const db = r.node.db;
    const attempts = await db.source
      .getRepository(db.entities.RetrieveAttempt)
      .find({ where: { studyInstanceUid: r.studyUid } });
    const moveMs = attempts.reduce((n, a) => n + (a.endedAt.getTime() - a.startedAt.getTime()), 0);
    return { ms: t1 - t0, moveMs, moves: attempts.length };
  } finally {
    await endRound(r);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const ms = (x: number) => (Number.isFinite(x) ? `${x.toFixed(0)} ms` : '-');

export async function benchCompletion(opts: {
  rounds: number;
}): Promise<{ rows: string[][]; json: Record<string, unknown> }> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-bench-completion-'));
  const a: number[] = [];
  const b: Array<{ ms: number; moveMs: number; moves: number }> = [];
  try {
    for (let i = 0; i < opts.rounds; i++) {
      a.push(await lastImage(tmp, i));
      b.push(await pull(tmp, i));
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const lastMs = median(a);
  const pullMs = median(b.map((x) => x.ms));
  const beyondMove = median(b.map((x) => x.ms - x.moveMs));
  const moveMs = median(b.map((x) => x.moveMs));
  const rows = [
    ['measurement', 'median', 'min', 'max', 'target'],
    [
      'last image after MPPS COMPLETED -> finished-scans',
      ms(lastMs),
      ms(Math.min(...a)),
      ms(Math.max(...a)),
      `<= ${TARGET_MS} ms`,
    ],
    [
      `N-SET COMPLETED, ${SERIES * PER_SERIES - PUSHED} of ${SERIES * PER_SERIES} pulled -> finished-scans`,
      ms(pullMs),
      ms(Math.min(...b.map((x) => x.ms))),
      ms(Math.max(...b.map((x) => x.ms))),
      '',
    ],
    ['  of which C-MOVE', ms(moveMs), '', '', ''],
    [
      '  minus the C-MOVE time',
      ms(beyondMove),
      ms(Math.min(...b.map((x) => x.ms - x.moveMs))),
      ms(Math.max(...b.map((x) => x.ms - x.moveMs))),
      `<= ${TARGET_MS} ms`,
    ],
  ];
  const json = {
    rounds: opts.rounds,
    study: { series: SERIES, perSeries: PER_SERIES, pushedBeforePull: PUSHED },
    lastImageToFinishedMs: { median: lastMs, all: a },
    nSetToFinishedMs: { median: pullMs, all: b.map((x) => x.ms) },
    moveMs: { median: moveMs, all: b.map((x) => x.moveMs) },
    nSetToFinishedMinusMoveMs: { median: beyondMove, all: b.map((x) => x.ms - x.moveMs) },
    moves: b.map((x) => x.moves),
    targetMs: TARGET_MS,
    met: lastMs <= TARGET_MS && beyondMove <= TARGET_MS,
  };
  return { rows, json };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const i = process.argv.indexOf('--rounds');
  const rounds = i >= 0 ? Number(process.argv[i + 1]) : 5;
  benchCompletion({ rounds: Number.isInteger(rounds) && rounds > 0 ? rounds : 5 }).then(
    ({ rows, json }) => {
      for (const r of rows) console.log(`| ${r.join(' | ')} |`);
      console.log(JSON.stringify(json, null, 2));
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
