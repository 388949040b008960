import assert from 'node:assert/strict';
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { startDcmqrscp } from '../helpers/dcmqrscp.js';
import { generateStudy, newUid, type GeneratedInstance } from '../helpers/dicomgen.js';
import { datasetBytes } from '../helpers/files.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { freePort, needPeer, run, storescu } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-metrics-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const AE = 'SCANNODE';
const SCU = 'METRICSSCU';
const storescuAs = (node: { port: number }, files: string[]) => storescu(node, files, { aet: SCU, aec: AE });

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text exposition format (0.0.4), samples only: `name{a="x",b="y"} value [timestamp]`. */
function parseProm(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const v = m[3]!;
    const value = v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v);
    assert.ok(!Number.isNaN(value) || v === 'NaN', `a number: ${line}`);
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

class Scrape {
  constructor(
    readonly samples: Sample[],
    readonly contentType: string,
  ) {}

  /** The value of the series with exactly these labels, undefined when absent. */
  get(name: string, labels: Record<string, string> = {}): number | undefined {
    const keys = Object.keys(labels);
    const s = this.samples.find(
      (s) =>
        s.name === name &&
        Object.keys(s.labels).filter((k) => k !== 'node').length === keys.length &&
        keys.every((k) => s.labels[k] === labels[k]),
    );
    return s?.value;
  }
}

/** GET /metrics from the node's own HTTP server, over TCP. */
async function scrape(node: TestNode): Promise<Scrape> {
  const addr = node.node.http.server.address() as net.AddressInfo;
  const res = await fetch(`http://127.0.0.1:${addr.port}/metrics`);
  const body = await res.text();
  assert.equal(res.status, 200, body);
  return new Scrape(parseProm(body), res.headers.get('content-type') ?? '');
}

async function sumOfSizes(node: TestNode, state: string): Promise<number> {
  return (await node.instances()).filter((r) => r.state === state).reduce((n, r) => n + r.size, 0);
}

async function activeScans(node: TestNode): Promise<number> {
  const db = node.node.db;
  return db.source.getRepository(db.entities.Scan).countBy({ state: 'active' });
}

const spec = (studyInstanceUid: string) => ({
  studyInstanceUid,
  accessionNumber: null,
  patientId: null,
  studyDate: null,
  mppsSopInstanceUid: null,
});

for (const kind of DB_KINDS) {
  describe(`metrics on ${kind}`, () => {
    test('C-STORE, a rejected association and scan requests show in GET /metrics', async (t: TestContext) => {
      if (!needPeer(t, 'storescu', 'echoscu', 'dcmodify') || !(await needDb(t, kind))) return;
      const node = await startTestNode({ kind });
      t.after(() => node.destroy());
      const dir = path.join(tmp, kind, 'study');
      const study = generateStudy({ dir, series: 2, perSeries: 4 });
      const N = study.length;

      const before = await scrape(node);
      assert.equal(before.get('scannode_instances_received_total', { calling_ae: SCU, remote: 'unknown' }), undefined);
      assert.equal(before.get('scannode_spool_instances'), 0);
      assert.equal(before.get('scannode_associations_total', { result: 'accepted' }), 0);
      const nodeLabels = new Set(before.samples.map((s) => s.labels.node));
      assert.deepEqual([...nodeLabels], [os.hostname().slice(0, 64)], 'every series names the node (cluster.nodeId)');

      const sent = await storescuAs(
        node,
        study.map((s) => s.file),
      );
      assert.equal(sent.code, 0, sent.stderr);
      const echo = await run('echoscu', ['-aet', SCU, '-aec', 'WRONG', '127.0.0.1', String(node.port)]);
      assert.notEqual(echo.code, 0, 'association to a wrong called AE refused');
      await node.node.scans.add(spec(study[0]!.studyInstanceUid), 'api');
      await node.node.scans.add(spec(newUid()), 'api');

      // Both associations are counted when their sockets close, which may come just after the tools exit.
      const m = await waitFor('both associations counted', async () => {
        const s = await scrape(node);
        return s.get('scannode_associations_total', { result: 'rejected' }) === 1 &&
          s.get('scannode_associations_total', { result: 'accepted' }) === 1
          ? s
          : undefined;
      });
      assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
      const rows = await node.instances();
      assert.equal(rows.length, N);
      const wireBytes = rows.reduce((n, r) => n + datasetBytes(path.join(node.dataDir, r.path)).length, 0);
      assert.equal(m.get('scannode_instances_received_total', { calling_ae: SCU, remote: 'unknown' }), N);
      assert.equal(
        m.get('scannode_bytes_received_total', { calling_ae: SCU, remote: 'unknown' }),
        wireBytes,
        'data set bytes',
      );
      assert.equal(m.get('scannode_cstore_duration_seconds_count'), N);
      assert.equal(m.get('scannode_cstore_duration_seconds_bucket', { le: '+Inf' }), N);
      assert.ok(m.get('scannode_cstore_duration_seconds_sum')! > 0);
      assert.equal(m.get('scannode_association_rejections_total', { reason: 'called-ae-not-recognized' }), 1);
      assert.equal(m.get('scannode_associations_active'), 0);
      assert.equal(m.get('scannode_scans', { state: 'active' }), 2);
      assert.equal(m.get('scannode_scans', { state: 'active' }), await activeScans(node));
      for (const state of ['finished', 'failed', 'cancelled']) assert.equal(m.get('scannode_scans', { state }), 0);
      assert.equal(m.get('scannode_spool_instances'), N);
      assert.equal(m.get('scannode_spool_bytes'), await sumOfSizes(node, 'spooled'));
      assert.ok(m.get('scannode_spool_bytes')! > wireBytes, 'spooled files carry their meta header too');
      assert.equal(m.get('scannode_archive_instances'), 0);
      assert.equal(m.get('scannode_archive_bytes'), 0);
      assert.ok(m.get('scannode_disk_free_bytes')! > 0);
      assert.ok(m.get('process_cpu_user_seconds_total')! >= 0, 'default process metrics');

      // A conflicting re-send (same SOP Instance UID, other content): one failure with its status, nothing received.
      const changed = path.join(tmp, kind, 'changed.dcm');
      fs.copyFileSync(study[0]!.file, changed);
      const mod = await run('dcmodify', ['-nb', '-m', 'SeriesDescription=changed', changed]);
      assert.equal(mod.code, 0, mod.stderr);
      await storescuAs(node, [changed]);
      const m2 = await scrape(node);
      assert.equal(m2.get('scannode_store_failures_total', { calling_ae: SCU, remote: 'unknown', status: 'c003' }), 1);
      assert.equal(m2.get('scannode_instances_received_total', { calling_ae: SCU, remote: 'unknown' }), N);
      assert.equal(m2.get('scannode_cstore_duration_seconds_count'), N + 1);
      assert.equal(m2.get('scannode_spool_instances'), N);
    });

    test('scheduler runs, C-MOVE attempts and archiving show in GET /metrics', async (t: TestContext) => {
      if (!needPeer(t, 'storescu', 'dcmqrscp', 'dcmqridx') || !(await needDb(t, kind))) return;
      const dir = fs.mkdtempSync(path.join(tmp, `q-${kind}-`));
      const study: GeneratedInstance[] = generateStudy({ dir, series: 2, perSeries: 4 });
      const studyUid = study[0]!.studyInstanceUid;
      const port = await freePort();
      const qr = await startDcmqrscp({
        aeTitle: 'QRSCANNER',
        destinations: [{ aeTitle: AE, port }],
        files: study.map((s) => s.file),
      });
      t.after(() => qr.destroy());
      let offsetMs = 0;
      const node = await startTestNode({
        kind,
        dicom: { port },
        now: () => new Date(Date.now() + offsetMs),
        extra: {
          scanner: { aeTitle: 'QRSCANNER', host: '127.0.0.1', port: qr.port },
          // Runs come from runNow() and triggers only.
          scheduler: { enabled: true, cron: '0 0 0 1 1 *' },
          completion: { quietPeriodSeconds: 60, failAfterHours: 24 },
          retrieve: { maxAttempts: 2, backoffSeconds: 0, settleSeconds: 0, findTimeoutSeconds: 10 },
        },
      });
      t.after(() => node.destroy());
      // One image pushed: the rest of its series comes by IMAGE-level C-MOVE, the other series by SERIES level.
      const sent = await storescuAs(node, [study[0]!.file]);
      assert.equal(sent.code, 0, sent.stderr);
      await node.node.scans.add(spec(studyUid), 'api');
      await node.node.scheduler.runNow();
      await waitFor('every image here', async () => (await node.instances()).length === study.length);
      offsetMs += 61_000;
      await node.node.scheduler.runNow();
      const db = node.node.db;
      await waitFor('the scan finished', async () => (await activeScans(node)) === 0);

      // Runs triggered by arriving images may still be going: wait until every started run has ended.
      const m = await waitFor('every scheduler run observed', async () => {
        const s = await scrape(node);
        const state = node.node.scheduler.state;
        const ok = s.get('scannode_scheduler_runs_total', { result: 'ok' }) ?? 0;
        const failed = s.get('scannode_scheduler_runs_total', { result: 'error' }) ?? 0;
        return !state.running && ok + failed === state.runs ? s : undefined;
      });
      const runs = node.node.scheduler.state.runs;
      assert.ok(runs >= 2);
      assert.equal(m.get('scannode_scheduler_runs_total', { result: 'error' }), 0);
      assert.equal(m.get('scannode_scheduler_run_duration_seconds_count'), runs);

      const attempts = await db.source.getRepository(db.entities.RetrieveAttempt).find();
      assert.ok(attempts.length >= 2, 'C-MOVEs sent');
      for (const level of ['STUDY', 'SERIES', 'IMAGE']) {
        const ofLevel = attempts.filter((a) => a.level === level);
        const failedRows = ofLevel.filter((a) => a.status !== 0 || a.error || (a.failed ?? 0) > 0);
        assert.equal(m.get('scannode_retrieve_attempts_total', { level }) ?? 0, ofLevel.length, level);
        assert.equal(m.get('scannode_retrieve_failures_total', { level }) ?? 0, failedRows.length, level);
      }
      assert.ok((m.get('scannode_retrieve_attempts_total', { level: 'IMAGE' }) ?? 0) >= 1);
      assert.ok((m.get('scannode_retrieve_attempts_total', { level: 'SERIES' }) ?? 0) >= 1);

      assert.equal(m.get('scannode_scans', { state: 'finished' }), 1);
      assert.equal(m.get('scannode_scans', { state: 'active' }), 0);
      assert.equal(m.get('scannode_spool_instances'), 0);
      assert.equal(m.get('scannode_spool_bytes'), 0);
      assert.equal(m.get('scannode_archive_instances'), study.length);
      assert.equal(m.get('scannode_archive_bytes'), await sumOfSizes(node, 'archived'));
      // The pushed image came from storescu's AE title, the moved ones from the scanner's.
      assert.equal(m.get('scannode_instances_received_total', { calling_ae: SCU, remote: 'unknown' }), 1);
      assert.equal(
        m.get('scannode_instances_received_total', { calling_ae: 'QRSCANNER', remote: 'scanner' }),
        study.length - 1,
      );
      const received = m.samples
        .filter((s) => s.name === 'scannode_instances_received_total')
        .reduce((n, s) => n + s.value, 0);
      assert.equal(received, study.length);
    });
  });
}
