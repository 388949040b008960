import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { DB_KINDS, needDb, type DbKind } from '../helpers/db.js';
import { startDcmqrscp, type DcmqrscpPeer } from '../helpers/dcmqrscp.js';
import { generateStudy, newUid, type GeneratedInstance } from '../helpers/dicomgen.js';
import { createDataset, nCreate, nSet, performedSeries } from '../helpers/mppsClient.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { startOrthanc, type OrthancPeer } from '../helpers/orthanc.js';
import { freePort, needPeer, storeAll } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-completion-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const AE = 'SCANNODE';

/** A clock the test moves forward; starts at real time. */
function fakeClock() {
  let offsetMs = 0;
  return {
    now: () => new Date(Date.now() + offsetMs),
    advance: (ms: number) => {
      offsetMs += ms;
    },
  };
}

function readJson(file: string): Record<string, unknown> | undefined {
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>) : undefined;
}

/** The summary is written before the row is updated: wait for the row too. */
async function rowState(node: TestNode, study: string, state: string) {
  return waitFor(`scan row ${state}`, async () => {
    const row = await scanRow(node, study);
    return row?.state === state ? row : undefined;
  });
}

const finished = (node: TestNode, study: string) =>
  readJson(path.join(node.dataDir, 'finished-scans', `${study}.json`));
const failed = (node: TestNode, study: string) => readJson(path.join(node.dataDir, 'failed-scans', `${study}.json`));

/** Every file under site/raw/<study>, as "<series>/<sop>". */
function archived(node: TestNode, study: string): string[] {
  const dir = path.join(node.dataDir, 'site', 'raw', study);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .flatMap((series) => fs.readdirSync(path.join(dir, series)).map((f) => `${series}/${f.replace(/\.dcm$/, '')}`))
    .sort();
}

const expectedFiles = (imgs: GeneratedInstance[]) =>
  imgs.map((i) => `${i.seriesInstanceUid}/${i.sopInstanceUid}`).sort();

async function scanRow(node: TestNode, study: string) {
  const db = node.node.db;
  const rows = await db.source
    .getRepository(db.entities.Scan)
    .find({ where: { studyInstanceUid: study }, order: { requestedAt: 'DESC' } });
  return rows[0];
}

function writeRequest(node: TestNode, name: string, body: Record<string, unknown>): void {
  const dir = path.join(node.dataDir, 'active-scans');
  const file = path.join(dir, name);
  fs.writeFileSync(`${file}.partial`, JSON.stringify(body));
  fs.renameSync(`${file}.partial`, file);
}

async function waitForActive(node: TestNode, study: string): Promise<void> {
  await waitFor('active scan row', async () => (await scanRow(node, study))?.state === 'active', 15_000);
}

interface Setup {
  node: TestNode;
  study: GeneratedInstance[];
  studyUid: string;
  clock: ReturnType<typeof fakeClock>;
}

const completionConfig = (over: Record<string, unknown> = {}, retrieve: Record<string, unknown> = {}) => ({
  // Runs come from triggers and runNow(); a tick at a random moment would make the tests racy.
  scheduler: { enabled: true, cron: '0 0 0 1 1 *' },
  completion: { quietPeriodSeconds: 60, failAfterHours: 24, ...over },
  retrieve: {
    maxAttempts: 2,
    backoffSeconds: 0,
    settleSeconds: 0,
    findTimeoutSeconds: 10,
    moveTimeoutSeconds: 60,
    ...retrieve,
  },
});

/** Orthanc as the scanner holding `series` x `perSeries`; scannode with our AE known to it. */
async function withOrthanc(
  t: TestContext,
  kind: DbKind,
  opts: {
    series?: number;
    perSeries?: number;
    completion?: Record<string, unknown>;
    retrieve?: Record<string, unknown>;
    registerUs?: boolean;
  } = {},
): Promise<(Setup & { orthanc: OrthancPeer }) | undefined> {
  if (!needPeer(t, 'Orthanc', 'storescu') || !(await needDb(t, kind))) return undefined;
  const dir = fs.mkdtempSync(path.join(tmp, 'o-'));
  const study = generateStudy({
    dir,
    series: opts.series ?? 2,
    perSeries: opts.perSeries ?? 5,
    accessionNumber: `A${process.pid % 10000}${Date.now() % 100000}`,
  });
  const port = await freePort();
  const orthanc = await startOrthanc({
    aeTitle: 'ORTHANCSCAN',
    modalities: opts.registerUs === false ? [] : [{ aeTitle: AE, port }],
  });
  t.after(() => orthanc.destroy());
  await orthanc.upload(study.map((s) => s.file));
  const clock = fakeClock();
  const node = await startTestNode({
    kind,
    dicom: { port },
    now: clock.now,
    extra: {
      scanner: { aeTitle: 'ORTHANCSCAN', host: '127.0.0.1', port: orthanc.port },
      ...completionConfig(opts.completion, opts.retrieve),
    },
  });
  t.after(() => node.destroy());
  return { node, study, studyUid: study[0]!.studyInstanceUid, clock, orthanc };
}

/** dcmqrscp as the scanner (no counts in its answers). */
async function withDcmqrscp(
  t: TestContext,
  kind: DbKind,
  opts: { registerUs?: boolean; completion?: Record<string, unknown> } = {},
): Promise<(Setup & { qr: DcmqrscpPeer }) | undefined> {
  if (!needPeer(t, 'dcmqrscp', 'dcmqridx', 'storescu') || !(await needDb(t, kind))) return undefined;
  const dir = fs.mkdtempSync(path.join(tmp, 'q-'));
  const study = generateStudy({
    dir,
    series: 2,
    perSeries: 4,
    accessionNumber: `Q${process.pid % 10000}${Date.now() % 100000}`,
  });
  const port = await freePort();
  const qr = await startDcmqrscp({
    aeTitle: 'QRSCANNER',
    destinations: opts.registerUs === false ? [] : [{ aeTitle: AE, port }],
    files: study.map((s) => s.file),
  });
  t.after(() => qr.destroy());
  const clock = fakeClock();
  const node = await startTestNode({
    kind,
    dicom: { port },
    now: clock.now,
    extra: {
      scanner: { aeTitle: 'QRSCANNER', host: '127.0.0.1', port: qr.port },
      ...completionConfig(opts.completion),
    },
  });
  t.after(() => node.destroy());
  return { node, study, studyUid: study[0]!.studyInstanceUid, clock, qr };
}

function seriesCounts(summary: Record<string, unknown>) {
  return (summary.series as Array<{ seriesInstanceUID: string; expected: number; received: number }>)
    .map((s) => [s.seriesInstanceUID, s.expected, s.received])
    .sort();
}

function countsOf(study: GeneratedInstance[]) {
  const by = new Map<string, number>();
  for (const i of study) by.set(i.seriesInstanceUid, (by.get(i.seriesInstanceUid) ?? 0) + 1);
  return [...by].map(([s, n]) => [s, n, n]).sort();
}

for (const kind of DB_KINDS) {
  describe(`completion on ${kind}`, () => {
    test('Orthanc scanner, MPPS: part pushed, the rest pulled on N-SET COMPLETED, finished; late image archived', async (t) => {
      // settleSeconds 1: the first pass waits retrieve.quietSeconds after the N-SET, then wakes itself up.
      const s = await withOrthanc(t, kind, { retrieve: { settleSeconds: 1 } });
      if (!s) return;
      const { node, study, studyUid } = s;
      // Series 1 partly, series 2 not at all: an IMAGE-level and a SERIES-level move.
      await storeAll(node, study.slice(0, 3));
      const mpps = newUid();
      assert.equal(
        (await nCreate(node.port, mpps, createDataset({ studyInstanceUid: studyUid, accessionNumber: 'X' }))).status,
        0,
      );
      const done = { PerformedProcedureStepStatus: 'COMPLETED', PerformedSeriesSequence: performedSeries(study) };
      const t0 = Date.now();
      assert.equal((await nSet(node.port, mpps, done)).status, 0);
      const summary = await waitFor('finished-scans summary', () => finished(node, studyUid), 30_000);
      t.diagnostic(`N-SET to finished-scans: ${Date.now() - t0} ms`);
      assert.equal(summary.state, 'finished');
      assert.equal(summary.mppsStatus, 'COMPLETED');
      assert.equal(summary.studyInstanceUID, studyUid);
      assert.deepEqual(seriesCounts(summary), countsOf(study));
      assert.equal(summary.archived, study.length);
      assert.deepEqual(archived(node, studyUid), expectedFiles(study));
      const row = await rowState(node, studyUid, 'finished');
      assert.equal(fs.existsSync(path.join(node.dataDir, 'active-scans', `${studyUid}.json`)), false);
      assert.ok(row?.completedAt);
      const rows = await node.instances();
      assert.equal(rows.length, study.length);
      assert.ok(rows.every((r) => r.state === 'archived' && r.path.startsWith('site/raw/')));
      const db = node.node.db;
      const attempts = await db.source.getRepository(db.entities.RetrieveAttempt).find({ where: { scanId: row!.id } });
      assert.deepEqual(attempts.map((a) => [a.level, a.status, a.completed]).sort(), [
        ['IMAGE', 0, 2],
        ['SERIES', 0, 5],
      ]);

      // A late image of the finished study: archived, the summary updated.
      const extra = generateStudy({
        dir: fs.mkdtempSync(path.join(tmp, 'late-')),
        series: 1,
        perSeries: 1,
        studyInstanceUid: studyUid,
      });
      await storeAll(node, extra);
      await node.node.scheduler.runNow();
      const updated = await waitFor('updated summary', () => {
        const f = finished(node, studyUid);
        return f && f.archived === study.length + 1 ? f : undefined;
      });
      assert.ok(updated.updatedAt);
      assert.deepEqual(archived(node, studyUid), expectedFiles([...study, ...extra]));
    });

    test('Orthanc scanner, request file, no MPPS: the rest pulled, finished after the quiet period', async (t) => {
      const s = await withOrthanc(t, kind, { completion: { quietPeriodSeconds: 120 } });
      if (!s) return;
      const { node, study, studyUid, clock } = s;
      await storeAll(node, study.slice(0, 7));
      writeRequest(node, `${studyUid}.json`, { studyInstanceUID: studyUid });
      await waitForActive(node, studyUid);
      await node.node.scheduler.runNow();
      assert.equal((await node.instances()).length, study.length, 'the missing instances were pulled');
      assert.equal(finished(node, studyUid), undefined, 'not finished inside the quiet period');
      clock.advance(121_000);
      await node.node.scheduler.runNow();
      const summary = await waitFor('finished', () => finished(node, studyUid));
      assert.equal(summary.mppsStatus, null);
      assert.deepEqual(seriesCounts(summary), countsOf(study));
      assert.deepEqual(archived(node, studyUid), expectedFiles(study));
    });

    test('dcmqrscp scanner (no counts), request by accession number: IMAGE queries, pulled, finished', async (t) => {
      const s = await withDcmqrscp(t, kind, { completion: { quietPeriodSeconds: 30 } });
      if (!s) return;
      const { node, study, studyUid, clock } = s;
      await storeAll(node, [study[0]!, study[5]!]);
      // The accession number generateStudy used is in the request; the STUDY C-FIND resolves it.
      const acc = (await node.node.db.source
        .getRepository(node.node.db.entities.Study)
        .findOne({ where: { studyInstanceUid: studyUid } }))!.accessionNumber!;
      writeRequest(node, `acc-${acc}.json`, { accessionNumber: acc });
      await waitFor('request row', async () => {
        const db = node.node.db;
        return db.source.getRepository(db.entities.Scan).existsBy({ accessionNumber: acc, state: 'active' });
      });
      await node.node.scheduler.runNow();
      assert.equal((await node.instances()).length, study.length, 'pulled at IMAGE level');
      const row = await scanRow(node, studyUid);
      assert.equal(row?.state, 'active', 'request resolved to its study');
      const db = node.node.db;
      const attempts = await db.source.getRepository(db.entities.RetrieveAttempt).find({ where: { scanId: row!.id } });
      assert.deepEqual(attempts.map((a) => [a.level, a.status, a.completed]).sort(), [
        ['IMAGE', 0, 3],
        ['IMAGE', 0, 3],
      ]);
      clock.advance(31_000);
      await node.node.scheduler.runNow();
      const summary = await waitFor('finished', () => finished(node, studyUid));
      assert.equal(summary.accessionNumber, acc);
      assert.deepEqual(seriesCounts(summary), countsOf(study));
      assert.deepEqual(archived(node, studyUid), expectedFiles(study));
    });

    test('MPPS COMPLETED before the last images (scanner down): waits, then the last image finishes it', async (t) => {
      if (!needPeer(t, 'storescu') || !(await needDb(t, kind))) return;
      const node = await startTestNode({
        kind,
        extra: { scanner: { aeTitle: 'GONE', host: '127.0.0.1', port: await freePort() }, ...completionConfig() },
      });
      t.after(() => node.destroy());
      const study = generateStudy({ dir: fs.mkdtempSync(path.join(tmp, 'c-')), series: 2, perSeries: 3 });
      const studyUid = study[0]!.studyInstanceUid;
      await storeAll(node, study.slice(0, 4));
      const mpps = newUid();
      await nCreate(node.port, mpps, createDataset({ studyInstanceUid: studyUid }));
      const done = { PerformedProcedureStepStatus: 'COMPLETED', PerformedSeriesSequence: performedSeries(study) };
      assert.equal((await nSet(node.port, mpps, done)).status, 0);
      await node.node.scheduler.runNow();
      assert.equal(finished(node, studyUid), undefined, 'not finished with 2 images missing');
      assert.equal((await scanRow(node, studyUid))?.state, 'active');
      const t0 = Date.now();
      await storeAll(node, study.slice(4));
      const summary = await waitFor('finished-scans summary', () => finished(node, studyUid), 5000);
      t.diagnostic(`last image to finished-scans: ${Date.now() - t0} ms`);
      assert.ok(Date.now() - t0 < 3000, 'the last image finishes the scan at once, not at the next tick');
      assert.deepEqual(seriesCounts(summary), countsOf(study));
      assert.deepEqual(archived(node, studyUid), expectedFiles(study));
    });

    test('request by accession number naming two studies on the scanner: one request each, both finished', async (t) => {
      const s = await withOrthanc(t, kind, { series: 1, perSeries: 2, completion: { quietPeriodSeconds: 30 } });
      if (!s) return;
      const { node, clock, orthanc } = s;
      const acc = `M${process.pid % 10000}${Date.now() % 100000}`;
      // Two studies under one new accession number (the generated one is left alone).
      const a = generateStudy({
        dir: fs.mkdtempSync(path.join(tmp, 'ma-')),
        series: 1,
        perSeries: 2,
        accessionNumber: acc,
      });
      const b = generateStudy({
        dir: fs.mkdtempSync(path.join(tmp, 'mb-')),
        series: 2,
        perSeries: 1,
        accessionNumber: acc,
      });
      await orthanc.upload([...a, ...b].map((i) => i.file));
      writeRequest(node, `acc-${acc}.json`, { accessionNumber: acc });
      await waitFor('request row', async () => {
        const db = node.node.db;
        return db.source.getRepository(db.entities.Scan).existsBy({ accessionNumber: acc, state: 'active' });
      });
      await node.node.scheduler.runNow();
      await node.node.scheduler.runNow();
      clock.advance(31_000);
      await node.node.scheduler.runNow();
      for (const st of [a, b]) {
        const uid = st[0]!.studyInstanceUid;
        const summary = await waitFor(`finished ${uid}`, () => finished(node, uid));
        assert.equal(summary.accessionNumber, acc);
        assert.deepEqual(seriesCounts(summary), countsOf(st));
        assert.deepEqual(archived(node, uid), expectedFiles(st));
      }
      const db = node.node.db;
      const rows = await db.source.getRepository(db.entities.Scan).find({ where: { accessionNumber: acc } });
      assert.deepEqual(rows.map((r) => r.state).sort(), ['finished', 'finished']);
    });

    test('MPPS DISCONTINUED: failed with the series counts, received images archived', async (t) => {
      const s = await withOrthanc(t, kind);
      if (!s) return;
      const { node, study, studyUid } = s;
      const firstSeries = study.filter((i) => i.seriesInstanceUid === study[0]!.seriesInstanceUid);
      await storeAll(node, firstSeries);
      const mpps = newUid();
      await nCreate(node.port, mpps, createDataset({ studyInstanceUid: studyUid }));
      assert.equal((await nSet(node.port, mpps, { PerformedProcedureStepStatus: 'DISCONTINUED' })).status, 0);
      const summary = await waitFor('failed-scans summary', () => failed(node, studyUid), 30_000);
      assert.equal(summary.state, 'failed');
      assert.equal(summary.mppsStatus, 'DISCONTINUED');
      assert.equal(summary.reason, 'MPPS DISCONTINUED (1 of 2 series received; received images archived)');
      assert.deepEqual(archived(node, studyUid), expectedFiles(firstSeries));
      await rowState(node, studyUid, 'failed');
      assert.equal(fs.existsSync(path.join(node.dataDir, 'active-scans', `${studyUid}.json`)), false);
    });

    test('move destination unknown at the scanner: failed after the retries, reason with the numbers', async (t) => {
      const s = await withDcmqrscp(t, kind, { registerUs: false });
      if (!s) return;
      const { node, study, studyUid } = s;
      await storeAll(node, study.slice(0, 1));
      writeRequest(node, `${studyUid}.json`, { studyInstanceUID: studyUid });
      await waitForActive(node, studyUid);
      for (let i = 0; i < 3; i++) await node.node.scheduler.runNow();
      const summary = await waitFor('failed-scans summary', () => failed(node, studyUid));
      assert.match(
        String(summary.reason),
        /^series [12]: \d of 4 missing after 2 C-MOVE attempts: 0xA801 move destination unknown/,
      );
      assert.equal(summary.retrieveAttempts, 4);
      assert.deepEqual(archived(node, studyUid), expectedFiles(study.slice(0, 1)));
    });

    test('images of a study no request names: archived after the quiet period', async (t) => {
      if (!needPeer(t, 'storescu') || !(await needDb(t, kind))) return;
      const clock = fakeClock();
      const node = await startTestNode({
        kind,
        now: clock.now,
        extra: { scanner: { aeTitle: 'GONE', host: '127.0.0.1', port: await freePort() }, ...completionConfig() },
      });
      t.after(() => node.destroy());
      const study = generateStudy({ dir: fs.mkdtempSync(path.join(tmp, 'h-')), series: 1, perSeries: 2 });
      const studyUid = study[0]!.studyInstanceUid;
      await storeAll(node, study);
      await node.node.scheduler.runNow();
      assert.deepEqual(archived(node, studyUid), [], 'still in the spool inside the quiet period');
      clock.advance(61_000);
      await node.node.scheduler.runNow();
      assert.deepEqual(archived(node, studyUid), expectedFiles(study));
      assert.ok((await node.instances()).every((r) => r.state === 'archived'));
    });

    test('no progress for 24 h since the last activity (fake clock), scanner down', async (t) => {
      if (!needPeer(t, 'storescu') || !(await needDb(t, kind))) return;
      const clock = fakeClock();
      const node = await startTestNode({
        kind,
        now: clock.now,
        // Nothing listens there: the scanner is down.
        extra: { scanner: { aeTitle: 'GONE', host: '127.0.0.1', port: await freePort() }, ...completionConfig() },
      });
      t.after(() => node.destroy());
      const study = generateStudy({ dir: fs.mkdtempSync(path.join(tmp, 'n-')), series: 1, perSeries: 2 });
      const studyUid = study[0]!.studyInstanceUid;
      await storeAll(node, study.slice(0, 1));
      writeRequest(node, `${studyUid}.json`, { studyInstanceUID: studyUid });
      await waitForActive(node, studyUid);
      clock.advance(23 * 3600_000);
      await node.node.scheduler.runNow();
      assert.equal((await scanRow(node, studyUid))?.state, 'active', 'still active after 23 h');
      clock.advance(3600_000 + 1000);
      await node.node.scheduler.runNow();
      const summary = await waitFor('failed-scans summary', () => failed(node, studyUid));
      assert.match(String(summary.reason), /^no progress for 24 h since \d{4}-\d\d-\d\dT/);
      assert.deepEqual(archived(node, studyUid), expectedFiles(study.slice(0, 1)));
    });
  });
}

/** A TCP forwarder on loopback that can be closed (connections refused) and opened again on the same port. */
function tcpProxy(target: () => number) {
  let server: net.Server | undefined;
  const sockets = new Set<net.Socket>();
  return {
    listen(port: number): Promise<number> {
      server = net.createServer((client) => {
        const upstream = net.connect(target(), '127.0.0.1');
        for (const sock of [client, upstream]) {
          sockets.add(sock);
          sock.setNoDelay(true);
          sock.on('close', () => sockets.delete(sock));
          sock.on('error', () => undefined);
        }
        client.pipe(upstream).pipe(client);
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      });
      return new Promise((resolve) =>
        server!.listen(port, '127.0.0.1', () => resolve((server!.address() as net.AddressInfo).port)),
      );
    },
    close(): Promise<void> {
      for (const sock of sockets) sock.destroy();
      return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
    },
  };
}

describe('completion: the scanner goes away mid-retrieve', () => {
  test('Orthanc stopped during the C-MOVE, logged once, back on the same port: the scan finishes', async (t) => {
    if (!needPeer(t, 'Orthanc', 'storescu')) return;
    const dir = fs.mkdtempSync(path.join(tmp, 'd-'));
    const study = generateStudy({ dir, series: 1, perSeries: 150, rows: 256, columns: 256 });
    const studyUid = study[0]!.studyInstanceUid;
    const port = await freePort();
    const scannerOpts = { aeTitle: 'ORTHANCDOWN', modalities: [{ aeTitle: AE, port }] };
    let orthanc = await startOrthanc(scannerOpts);
    t.after(() => orthanc.destroy());
    // The scanner's address as scannode knows it: a proxy to whichever Orthanc runs, closed while none does.
    const proxy = tcpProxy(() => orthanc.port);
    const qrPort = await proxy.listen(0);
    t.after(() => proxy.close());
    await orthanc.upload(study.map((s) => s.file));
    const clock = fakeClock();
    const node = await startTestNode({
      dicom: { port },
      now: clock.now,
      extra: {
        scanner: { aeTitle: 'ORTHANCDOWN', host: '127.0.0.1', port: qrPort },
        ...completionConfig({ quietPeriodSeconds: 30 }),
        log: { level: 'warn' },
      },
    });
    t.after(() => node.destroy());
    await storeAll(node, study.slice(0, 1));
    writeRequest(node, `${studyUid}.json`, { studyInstanceUID: studyUid });
    await waitForActive(node, studyUid);

    const pass = node.node.scheduler.runNow();
    await waitFor('the C-MOVE under way', async () => (await node.instances()).length >= 10, 30_000);
    await proxy.close();
    await orthanc.destroy();
    await pass;
    const partial = (await node.instances()).length;
    assert.ok(partial < study.length, `stopped mid-retrieve (${partial} of ${study.length})`);
    // More passes while it is down: the state is logged once, and the attempts do not use up retrieve.maxAttempts.
    for (let i = 0; i < 3; i++) await node.node.scheduler.runNow();
    assert.equal((await scanRow(node, studyUid))?.state, 'active');
    const log = fs.readFileSync(path.join(node.dir, 'scannode.log'), 'utf8');
    assert.equal(log.match(/the scanner is not reachable/g)?.length, 1, log);

    orthanc = await startOrthanc(scannerOpts);
    await orthanc.upload(study.map((s) => s.file));
    await proxy.listen(qrPort);
    await node.node.scheduler.runNow();
    assert.equal((await node.instances()).length, study.length, 'the rest pulled once it is back');
    clock.advance(31_000);
    await node.node.scheduler.runNow();
    const summary = await waitFor('finished', () => finished(node, studyUid));
    assert.deepEqual(seriesCounts(summary), countsOf(study));
    assert.deepEqual(archived(node, studyUid), expectedFiles(study));
  });
});
