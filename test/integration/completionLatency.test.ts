/**
 * When a scan with missing images is pulled: not after a fixed settle time, but as soon as the scanner (dcmqrscp,
 * whose AE title is the scanner's) no longer has an association open storing the study and the stream is quiet.
 * settleSeconds is an hour in every test here: a pull that waited for it would never be seen.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { startDcmqrscp } from '../helpers/dcmqrscp.js';
import { dulAssociate, type DulAssociation } from '../helpers/dulClient.js';
import { generateStudy, newUid, type GeneratedInstance } from '../helpers/dicomgen.js';
import { createDataset, nCreate, nSet, performedSeries } from '../helpers/mppsClient.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { freePort, needPeer, storescu } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-latency-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const AE = 'SCANNODE';
const SCANNER = 'QRSCANNER';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const EXPLICIT = '1.2.840.10008.1.2.1';

/** A clock the test moves forward; starts at real time. */
function fakeClock() {
  let offsetMs = 0;
  return { now: () => new Date(Date.now() + offsetMs), advance: (ms: number) => void (offsetMs += ms) };
}

async function setup(t: TestContext) {
  if (!needPeer(t, 'dcmqrscp', 'dcmqridx', 'storescu')) return undefined;
  const study = generateStudy({ dir: fs.mkdtempSync(path.join(tmp, 's-')), series: 2, perSeries: 4 });
  const port = await freePort();
  const qr = await startDcmqrscp({
    aeTitle: SCANNER,
    destinations: [{ aeTitle: AE, port }],
    files: study.map((s) => s.file),
  });
  t.after(() => qr.destroy());
  const clock = fakeClock();
  const node = await startTestNode({
    dicom: { port },
    now: clock.now,
    extra: {
      scanner: { aeTitle: SCANNER, host: '127.0.0.1', port: qr.port },
      // Runs come from events and runNow(); a tick at a random moment would make the tests racy.
      scheduler: { enabled: true, cron: '0 0 0 1 1 *' },
      completion: { quietPeriodSeconds: 60 },
      retrieve: { settleSeconds: 3600, quietSeconds: 0.5, backoffSeconds: 0, findTimeoutSeconds: 10 },
    },
  });
  t.after(() => node.destroy());
  return { node, study, studyUid: study[0]!.studyInstanceUid, clock };
}

const finished = (node: TestNode, study: string) => {
  const file = path.join(node.dataDir, 'finished-scans', `${study}.json`);
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>) : undefined;
};

async function scanRow(node: TestNode, study: string) {
  const db = node.node.db;
  return db.source.getRepository(db.entities.Scan).findOne({ where: { studyInstanceUid: study } });
}

async function attempts(node: TestNode, study: string) {
  const db = node.node.db;
  const rows = await db.source.getRepository(db.entities.RetrieveAttempt).find({ where: { studyInstanceUid: study } });
  return rows.map((r) => [r.level, r.status, r.completed]).sort();
}

async function mppsCompleted(node: TestNode, study: GeneratedInstance[]): Promise<void> {
  const uid = newUid();
  const studyInstanceUid = study[0]!.studyInstanceUid;
  assert.equal((await nCreate(node.port, uid, createDataset({ studyInstanceUid }))).status, 0);
  const done = { PerformedProcedureStepStatus: 'COMPLETED', PerformedSeriesSequence: performedSeries(study) };
  assert.equal((await nSet(node.port, uid, done)).status, 0);
}

/** The data set of a Part 10 file (what a C-STORE carries): past the preamble and the meta group. */
function datasetOf(file: string): Buffer {
  const b = fs.readFileSync(file);
  return b.subarray(144 + b.readUInt32LE(140));
}

/** An association as the scanner, left open by the test. */
async function scannerAssociation(node: TestNode): Promise<DulAssociation> {
  return dulAssociate({
    port: node.port,
    calledAe: AE,
    callingAe: SCANNER,
    contexts: [{ id: 1, abstractSyntax: MR, transferSyntaxes: [EXPLICIT] }],
  });
}

let messageId = 0;
async function store(a: DulAssociation, img: GeneratedInstance): Promise<void> {
  const command = {
    CommandField: 0x0001,
    MessageID: ++messageId,
    Priority: 0,
    AffectedSOPClassUID: MR,
    AffectedSOPInstanceUID: img.sopInstanceUid,
  };
  const rsp = await a.request(1, command, datasetOf(img.file));
  assert.equal(rsp.command.Status, 0);
}

describe('completion latency: what the scanner is doing, not a fixed settle time, holds a retrieve', () => {
  test('MPPS COMPLETED with images missing, the scanner done sending: pulled at once, finished', async (t) => {
    const s = await setup(t);
    if (!s) return;
    const { node, study, studyUid } = s;
    // The scanner pushes part of the study on its own association, which it then releases.
    const r = await storescu(node, [study[0]!.file], { aet: SCANNER, aec: AE });
    assert.equal(r.code, 0, r.stderr);
    await mppsCompleted(node, study);
    // No runNow(), no clock moved: the N-SET and the wake-up after the quiet window must get there on their own.
    const summary = await waitFor('finished-scans summary', () => finished(node, studyUid));
    assert.equal(summary.state, 'finished');
    assert.equal(summary.archived, study.length);
    assert.deepEqual(await attempts(node, studyUid), [
      ['IMAGE', 0, 3],
      ['SERIES', 0, 4],
    ]);
  });

  test("the scanner's association storing the study holds the pull; its release starts it", async (t) => {
    const s = await setup(t);
    if (!s) return;
    const { node, study, studyUid, clock } = s;
    const a = await scannerAssociation(node);
    t.after(() => a.abort());
    await store(a, study[0]!);
    await mppsCompleted(node, study);
    clock.advance(60_000); // far past quietSeconds, far inside settleSeconds
    await node.node.scheduler.runNow();
    const row = await scanRow(node, studyUid);
    assert.equal(row?.state, 'active');
    assert.equal(node.node.reconciler.progress(row.id)?.waiting, 'the scanner is still sending');
    assert.deepEqual(await attempts(node, studyUid), [], 'no C-MOVE while the scanner sends');
    await store(a, study[1]!);
    await a.release();
    const summary = await waitFor('finished-scans summary', () => finished(node, studyUid));
    assert.equal(summary.archived, study.length);
    assert.deepEqual(await attempts(node, studyUid), [
      ['IMAGE', 0, 2],
      ['SERIES', 0, 4],
    ]);
  });

  test('an association of the scanner left open and idle holds the pull settleSeconds at most', async (t) => {
    const s = await setup(t);
    if (!s) return;
    const { node, study, studyUid, clock } = s;
    const a = await scannerAssociation(node);
    t.after(() => a.abort());
    await store(a, study[0]!);
    await mppsCompleted(node, study);
    await node.node.scheduler.runNow();
    assert.deepEqual(await attempts(node, studyUid), []);
    clock.advance(3601_000);
    await node.node.scheduler.runNow();
    assert.deepEqual(await attempts(node, studyUid), [
      ['IMAGE', 0, 3],
      ['SERIES', 0, 4],
    ]);
    const summary = await waitFor('finished-scans summary', () => finished(node, studyUid));
    assert.equal(summary.archived, study.length);
  });
});
