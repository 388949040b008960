import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test, before, after, type TestContext } from 'node:test';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { needPeer, run, needNode, storeAll } from '../helpers/peers.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { generateStudy, newUid } from '../helpers/dicomgen.js';
import { createDataset, mppsSend, nCreate, nSet, performedSeries } from '../helpers/mppsClient.js';
import { waitFor } from '../helpers/waitFor.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-mpps-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Img {
  file: string;
  sopInstanceUid: string;
  seriesInstanceUid: string;
}

/** Small MR images of one study; `mppsUid` puts the Referenced Performed Procedure Step Sequence in each. */
function images(dir: string, study: string, series: number, perSeries: number, mppsUid?: string): Img[] {
  const extra = mppsUid
    ? {
        ReferencedPerformedProcedureStepSequence: [
          { ReferencedSOPClassUID: '1.2.840.10008.3.1.2.3.3', ReferencedSOPInstanceUID: mppsUid },
        ],
      }
    : undefined;
  return generateStudy({ dir, series, perSeries, rows: 8, columns: 8, studyInstanceUid: study, extra });
}

function requestFile(node: TestNode, study: string): Record<string, unknown> | undefined {
  const file = path.join(node.dataDir, 'active-scans', `${study}.json`);
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>) : undefined;
}

async function dcmdump(t: TestContext, node: TestNode, uid: string): Promise<string | undefined> {
  if (!needPeer(t, 'dcmdump')) return undefined;
  const r = await run('dcmdump', ['+U8', path.join(node.dataDir, 'scanner', `${uid}.dcm`)]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** Per series: expected and received counts as `scan show` reports them. */
async function counts(node: TestNode, study: string) {
  const v = await node.node.scans.describe(study);
  assert.ok(v, `scan for ${study}`);
  return {
    view: v,
    series: Object.fromEntries(
      v.series.map((s) => [s.seriesInstanceUid, { expected: s.expected, received: s.received }]),
    ),
  };
}

for (const kind of DB_KINDS) {
  describe(`MPPS SCP on ${kind}`, () => {
    let node: TestNode;
    before(async () => {
      if (!(await needDb({ skip: (why) => console.log(`# skipped: ${why}`) }, kind))) return;
      node = await startTestNode({ kind });
    });
    after(async () => node?.destroy());

    test('N-CREATE IN PROGRESS, N-SET with the performed series, N-SET COMPLETED: active scan expecting those UIDs', async (t) => {
      if (!needNode(t, node)) return;
      const study = newUid();
      const mpps = newUid();
      const seriesA = newUid();
      const seriesB = newUid();
      const refs = [
        { seriesInstanceUid: seriesA, sopInstanceUid: newUid() },
        { seriesInstanceUid: seriesA, sopInstanceUid: newUid() },
        { seriesInstanceUid: seriesB, sopInstanceUid: newUid() },
      ];
      const r = await mppsSend(node.port, [
        { op: 'create', uid: mpps, dataset: createDataset({ studyInstanceUid: study }) },
        { op: 'set', uid: mpps, dataset: { PerformedSeriesSequence: performedSeries(refs) } },
        {
          op: 'set',
          uid: mpps,
          dataset: {
            PerformedProcedureStepStatus: 'COMPLETED',
            PerformedProcedureStepEndDate: '20261123',
            PerformedProcedureStepEndTime: '103000',
          },
        },
      ]);
      assert.deepEqual(
        r.map((x) => x.status),
        [0, 0, 0],
      );
      const file = requestFile(node, study);
      assert.ok(file, 'active-scans/<study>.json written');
      assert.equal(file.studyInstanceUID, study);
      assert.equal(file.mppsStatus, 'COMPLETED');
      assert.equal(file.state, 'active');
      const { view, series } = await counts(node, study);
      assert.equal(view.state, 'active');
      assert.equal(view.mppsStatus, 'COMPLETED');
      assert.deepEqual(series, { [seriesA]: { expected: 2, received: 0 }, [seriesB]: { expected: 1, received: 0 } });
      assert.deepEqual(
        view.series.map((x) => [x.modality, x.seriesDescription]),
        [
          ['MR', 'series'],
          ['MR', 'series'],
        ],
        'series not received yet are described by the MPPS',
      );
      const db = node.node.db;
      const expected = await db.source.getRepository(db.entities.ScanExpected).find({ where: { scanId: view.id } });
      assert.deepEqual(expected.map((e) => e.sopInstanceUid).sort(), refs.map((x) => x.sopInstanceUid).sort());
      const history = await db.source.getRepository(db.entities.MppsEvent).find({ where: { mppsUid: mpps } });
      assert.deepEqual(history.map((h) => h.statusAfter).sort(), ['COMPLETED', 'IN PROGRESS', 'IN PROGRESS']);
      const step = await db.source.getRepository(db.entities.MppsStep).findOneByOrFail({ sopInstanceUid: mpps });
      assert.equal(step.endDate, '20261123');
      assert.equal(step.endTime, '103000');
      const dump = await dcmdump(t, node, mpps);
      if (dump) {
        assert.match(dump, /\(0040,0252\) CS \[COMPLETED\]/);
        assert.match(dump, /\(0040,0250\) DA \[20261123\]/);
        for (const x of refs) assert.ok(dump.includes(x.sopInstanceUid), `${x.sopInstanceUid} in the scanner file`);
        assert.match(dump, /MediaStorageSOPInstanceUID/);
      }
    });

    test('error statuses: 0106 not IN PROGRESS, 0111 duplicate, 0112 unknown, 0110 after COMPLETED', async (t) => {
      if (!needNode(t, node)) return;
      const bad = await nCreate(
        node.port,
        newUid(),
        createDataset({ studyInstanceUid: newUid(), status: 'COMPLETED' }),
      );
      assert.equal(bad.status, 0x0106);
      assert.match(bad.comment ?? '', /PerformedProcedureStepStatus/);
      const uid = newUid();
      const study = newUid();
      const first = await nCreate(node.port, uid, createDataset({ studyInstanceUid: study }));
      assert.equal(first.status, 0);
      const dup = await nCreate(node.port, uid, createDataset({ studyInstanceUid: study }));
      assert.equal(dup.status, 0x0111);
      const unknown = await nSet(node.port, newUid(), { PerformedProcedureStepStatus: 'COMPLETED' });
      assert.equal(unknown.status, 0x0112);
      const badValue = await nSet(node.port, uid, { PerformedProcedureStepStatus: 'FINISHED' });
      assert.equal(badValue.status, 0x0106);
      assert.equal((await nSet(node.port, uid, { PerformedProcedureStepStatus: 'COMPLETED' })).status, 0);
      const late = await nSet(node.port, uid, { PerformedProcedureStepDescription: 'changed' });
      assert.equal(late.status, 0x0110);
      const dump = fs.readFileSync(path.join(node.dataDir, 'scanner', `${uid}.dcm`));
      assert.ok(!dump.includes('changed'), 'a refused N-SET leaves the scanner file as it was');
    });

    test('N-CREATE without a SOP Instance UID gets one assigned and answered', async (t) => {
      if (!needNode(t, node)) return;
      const r = await nCreate(node.port, undefined, createDataset({ studyInstanceUid: newUid() }));
      assert.equal(r.status, 0);
      assert.match(r.sopInstanceUid ?? '', /^2\.25\.\d+$/);
      assert.ok(fs.existsSync(path.join(node.dataDir, 'scanner', `${r.sopInstanceUid}.dcm`)));
    });

    test('non-ASCII PatientName in ISO_IR 192 survives into the database and the scanner file', async (t) => {
      if (!needNode(t, node)) return;
      const uid = newUid();
      const name = 'Müller^Jörg=山田^太郎';
      const r = await nCreate(
        node.port,
        uid,
        createDataset({ studyInstanceUid: newUid(), charset: 'ISO_IR 192', patientName: name }),
      );
      assert.equal(r.status, 0);
      const db = node.node.db;
      const step = await db.source.getRepository(db.entities.MppsStep).findOneByOrFail({ sopInstanceUid: uid });
      assert.ok(step.dataset.includes('Müller^Jörg'), step.dataset);
      const dump = await dcmdump(t, node, uid);
      if (dump) {
        assert.match(dump, /ISO_IR 192/);
        assert.ok(dump.includes('Müller^Jörg'), dump);
      }
    });

    test('a DISCONTINUED step records its end and may no longer be updated', async (t) => {
      if (!needNode(t, node)) return;
      const uid = newUid();
      const study = newUid();
      assert.equal((await nCreate(node.port, uid, createDataset({ studyInstanceUid: study }))).status, 0);
      const r = await nSet(node.port, uid, {
        PerformedProcedureStepStatus: 'DISCONTINUED',
        PerformedProcedureStepDiscontinuationReasonCodeSequence: [
          { CodeValue: '110514', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Incorrect worklist entry selected' },
        ],
      });
      assert.equal(r.status, 0);
      const db = node.node.db;
      const step = await db.source.getRepository(db.entities.MppsStep).findOneByOrFail({ sopInstanceUid: uid });
      assert.equal(step.status, 'DISCONTINUED');
      assert.ok(step.endedAt, 'end time recorded');
      assert.match(step.endDate ?? '', /^\d{8}$/, 'end date filled in when the scanner sent none');
      assert.equal(requestFile(node, study)?.mppsStatus, 'DISCONTINUED');
      assert.equal((await nSet(node.port, uid, { PerformedProcedureStepStatus: 'COMPLETED' })).status, 0x0110);
      const dump = await dcmdump(t, node, uid);
      if (dump) assert.match(dump, /\[DISCONTINUED\]/);
    });

    test('MPPS before, between and after the images: expected and received agree', async (t) => {
      if (!needNode(t, node) || !needPeer(t, 'storescu')) return;
      // before: N-CREATE, then images, then N-SET with the performed series and COMPLETED
      const s1 = newUid();
      const m1 = newUid();
      const i1 = images(path.join(tmp, kind, 'before'), s1, 2, 3);
      assert.equal((await nCreate(node.port, m1, createDataset({ studyInstanceUid: s1 }))).status, 0);
      await storeAll(node, i1);
      const done = { PerformedProcedureStepStatus: 'COMPLETED', PerformedSeriesSequence: performedSeries(i1) };
      assert.equal((await nSet(node.port, m1, done)).status, 0);
      let c = await counts(node, s1);
      for (const v of Object.values(c.series)) assert.deepEqual(v, { expected: 3, received: 3 });
      assert.equal(Object.keys(c.series).length, 2);

      // between: half the images, the MPPS, the rest
      const s2 = newUid();
      const m2 = newUid();
      const i2 = images(path.join(tmp, kind, 'between'), s2, 1, 4);
      await storeAll(node, i2.slice(0, 2));
      const r2 = await mppsSend(node.port, [
        { op: 'create', uid: m2, dataset: createDataset({ studyInstanceUid: s2 }) },
        {
          op: 'set',
          uid: m2,
          dataset: { PerformedProcedureStepStatus: 'COMPLETED', PerformedSeriesSequence: performedSeries(i2) },
        },
      ]);
      assert.deepEqual(
        r2.map((x) => x.status),
        [0, 0],
      );
      c = await counts(node, s2);
      assert.deepEqual(Object.values(c.series), [{ expected: 4, received: 2 }]);
      await storeAll(node, i2.slice(2));
      c = await counts(node, s2);
      assert.deepEqual(Object.values(c.series), [{ expected: 4, received: 4 }]);

      // after, and the scanner left the StudyInstanceUID out of the MPPS: the images it names tell the study
      const s3 = newUid();
      const m3 = newUid();
      const i3 = images(path.join(tmp, kind, 'after'), s3, 1, 2);
      await storeAll(node, i3);
      const r3 = await mppsSend(node.port, [
        { op: 'create', uid: m3, dataset: createDataset({}) },
        {
          op: 'set',
          uid: m3,
          dataset: { PerformedProcedureStepStatus: 'COMPLETED', PerformedSeriesSequence: performedSeries(i3) },
        },
      ]);
      assert.deepEqual(
        r3.map((x) => x.status),
        [0, 0],
      );
      assert.equal(requestFile(node, s3)?.mppsStatus, 'COMPLETED', 'active-scans/<study>.json once the study is known');
      assert.ok(!fs.existsSync(path.join(node.dataDir, 'active-scans', `mpps-${m3}.json`)));
      c = await counts(node, s3);
      assert.deepEqual(Object.values(c.series), [{ expected: 2, received: 2 }]);

      // before, without the StudyInstanceUID: the images' Referenced Performed Procedure Step names the MPPS
      const s4 = newUid();
      const m4 = newUid();
      assert.equal((await nCreate(node.port, m4, createDataset({}))).status, 0);
      assert.ok(fs.existsSync(path.join(node.dataDir, 'active-scans', `mpps-${m4}.json`)), 'unresolved request file');
      await storeAll(node, images(path.join(tmp, kind, 'before-nostudy'), s4, 1, 2, m4));
      await waitFor('the request to move to its study', () => requestFile(node, s4));
      assert.ok(!fs.existsSync(path.join(node.dataDir, 'active-scans', `mpps-${m4}.json`)));
      const v4 = await node.node.scans.describe(s4);
      assert.deepEqual(
        v4?.mpps.map((m) => m.sopInstanceUid),
        [m4],
      );
    });

    test('a restart in the middle of a procedure: the step and its scan survive', async (t) => {
      if (!needNode(t, node)) return;
      const uid = newUid();
      const study = newUid();
      const refs = [{ seriesInstanceUid: newUid(), sopInstanceUid: newUid() }];
      assert.equal((await nCreate(node.port, uid, createDataset({ studyInstanceUid: study }))).status, 0);
      assert.equal((await nSet(node.port, uid, { PerformedSeriesSequence: performedSeries(refs) })).status, 0);
      await node.restart();
      assert.equal((await nCreate(node.port, uid, createDataset({ studyInstanceUid: study }))).status, 0x0111);
      assert.equal((await nSet(node.port, uid, { PerformedProcedureStepStatus: 'COMPLETED' })).status, 0);
      const { view } = await counts(node, study);
      assert.equal(view.mppsStatus, 'COMPLETED');
      assert.deepEqual(
        view.series.map((s) => s.expected),
        [1],
      );
      assert.equal(requestFile(node, study)?.mppsStatus, 'COMPLETED');
      const db = node.node.db;
      const scans = await db.source.getRepository(db.entities.Scan).find({ where: { studyInstanceUid: study } });
      assert.equal(scans.length, 1, 'one request for the study, not one per start');
    });
  });
}
