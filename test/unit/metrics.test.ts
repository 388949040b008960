import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import Fastify from 'fastify';
import { register as globalRegister } from 'prom-client';
import { insertScan } from '../../src/db/scanStore.js';
import type { ScanRow } from '../../src/db/scanEntities.js';
import { indexRows, insertInstanceBatch } from '../../src/db/instanceIndex.js';
import { openTestDatabase } from '../helpers/db.js';
import { checkAssociation, type Rejection } from '../../src/dimse/policy.js';
import type { HttpServices } from '../../src/http/common.js';
import { registerMetricsRoute } from '../../src/http/metrics.js';
import { fakeLog } from '../helpers/log.js';
import { MAX_CALLING_AES, Metrics, OTHER_AE } from '../../src/metrics/metrics.js';

type Labels = Record<string, string | number>;

/** The value of one series (exact label set) of a metric, from the registry's JSON form; undefined when absent. */
async function value(m: Metrics, name: string, labels: Labels = {}, series = name): Promise<number | undefined> {
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  assert.ok(metric, `metric ${name} registered`);
  const keys = Object.keys(labels);
  const v = metric.values.find(
    (v) =>
      ((v as { metricName?: string }).metricName ?? name) === series &&
      Object.keys(v.labels).length === keys.length &&
      keys.every((k) => String(v.labels[k]) === String(labels[k])),
  );
  return v?.value;
}

const AE = { id: 'x', calledAe: 'SCANNODE', remoteAddress: '127.0.0.1', remotePort: 1 };

describe('Metrics', () => {
  test('C-STORE results: counters by calling AE and status, histogram of the duration', async () => {
    const m = new Metrics({ log: fakeLog().log, defaultMetrics: false });
    const store = (callingAe: string, status: number, bytes: number, durationMs: number) =>
      m.storeCompleted({ association: { ...AE, callingAe }, status, bytes, durationMs });
    store('SCU1', 0, 1000, 2);
    store('SCU1', 0, 2500, 40);
    store('SCU1', 0, 500, 3000);
    store('SCU1', 0xa700, 9999, 1);
    store('SCU2 ', 0xc003, 77, 20_000);

    assert.equal(await value(m, 'scannode_instances_received_total', { calling_ae: 'SCU1', remote: 'unknown' }), 3);
    assert.equal(
      await value(m, 'scannode_instances_received_total', { calling_ae: 'SCU2', remote: 'unknown' }),
      undefined,
    );
    assert.equal(
      await value(m, 'scannode_bytes_received_total', { calling_ae: 'SCU1', remote: 'unknown' }),
      4000,
      'failures not counted',
    );
    assert.equal(
      await value(m, 'scannode_store_failures_total', { calling_ae: 'SCU1', remote: 'unknown', status: 'a700' }),
      1,
    );
    assert.equal(
      await value(m, 'scannode_store_failures_total', { calling_ae: 'SCU2', remote: 'unknown', status: 'c003' }),
      1,
    );

    const h = 'scannode_cstore_duration_seconds';
    assert.equal(await value(m, h, {}, `${h}_count`), 5);
    assert.ok(Math.abs((await value(m, h, {}, `${h}_sum`))! - 23.043) < 1e-9);
    assert.equal(await value(m, h, { le: 0.001 }, `${h}_bucket`), 1);
    assert.equal(await value(m, h, { le: 0.0025 }, `${h}_bucket`), 2);
    assert.equal(await value(m, h, { le: 0.05 }, `${h}_bucket`), 3);
    assert.equal(await value(m, h, { le: 5 }, `${h}_bucket`), 4);
    assert.equal(await value(m, h, { le: 10 }, `${h}_bucket`), 4, 'the 10 s bucket is the last finite one');
    assert.equal(await value(m, h, { le: '+Inf' }, `${h}_bucket`), 5);
  });

  test('rejections are labelled by their typed kind (no words parsed); the label set stays bounded', async () => {
    const policy = { aeTitle: 'SCANNODE', allowedCallingAeTitles: ['GOOD'], maxAssociations: 2 };
    const cases: Array<[Rejection | undefined, string]> = [
      [checkAssociation(policy, 'GOOD', 'WRONG', 0), 'called-ae-not-recognized'],
      [checkAssociation(policy, 'GOOD', 'ANOTHER_ONE', 0), 'called-ae-not-recognized'],
      [checkAssociation(policy, 'EVIL', 'SCANNODE', 0), 'calling-ae-not-recognized'],
      [checkAssociation(policy, 'GOOD', 'SCANNODE', 2), 'local-limit-exceeded'],
      [checkAssociation(policy, 'GOOD', 'SCANNODE', 17), 'local-limit-exceeded'],
    ];
    for (const [rejection, slug] of cases) {
      assert.ok(rejection, `policy rejects for ${slug}`);
      assert.equal(rejection.kind, slug);
    }

    const m = new Metrics({ log: fakeLog().log, defaultMetrics: false });
    assert.equal(await value(m, 'scannode_associations_total', { result: 'rejected' }), 0, 'present before any');
    m.associationClosed({ accepted: true });
    m.associationClosed({ accepted: true });
    for (const [rejection] of cases) m.associationClosed({ accepted: false, rejection: rejection!.kind });
    m.associationClosed({ accepted: false });
    assert.equal(await value(m, 'scannode_associations_total', { result: 'accepted' }), 2);
    assert.equal(await value(m, 'scannode_associations_total', { result: 'rejected' }), 6);
    const r = 'scannode_association_rejections_total';
    assert.equal(await value(m, r, { reason: 'called-ae-not-recognized' }), 2);
    assert.equal(await value(m, r, { reason: 'calling-ae-not-recognized' }), 1);
    assert.equal(await value(m, r, { reason: 'local-limit-exceeded' }), 2);
    assert.equal(await value(m, r, { reason: 'setup-failed' }), 1);
    const json = (await m.registry.getMetricsAsJSON()).find((x) => x.name === r)!;
    assert.equal(json.values.length, 4, 'one series per kind, none per AE title or count');
  });

  test('calling AE titles beyond the cap share one label', async () => {
    const m = new Metrics({ log: fakeLog().log, defaultMetrics: false });
    for (let i = 0; i < MAX_CALLING_AES + 5; i++) {
      m.storeCompleted({ association: { ...AE, callingAe: `AE${i}` }, status: 0, bytes: 1, durationMs: 1 });
    }
    m.storeCompleted({ association: { ...AE, callingAe: 'AE0' }, status: 0, bytes: 1, durationMs: 1 });
    const json = (await m.registry.getMetricsAsJSON()).find((x) => x.name === 'scannode_instances_received_total')!;
    assert.equal(json.values.length, MAX_CALLING_AES + 1);
    assert.equal(await value(m, 'scannode_instances_received_total', { calling_ae: OTHER_AE, remote: 'unknown' }), 5);
    assert.equal(
      await value(m, 'scannode_instances_received_total', { calling_ae: 'AE0', remote: 'unknown' }),
      2,
      'known AE keeps its own',
    );
  });

  test('retrieve attempts and failures by level', async () => {
    const ok = { status: 0, error: null, failed: 0, completed: 4, requested: 4 };

    const m = new Metrics({ log: fakeLog().log, defaultMetrics: false });
    m.retrieveAttempt({ level: 'SERIES', ...ok });
    m.retrieveAttempt({ level: 'SERIES', ...ok, status: 0xa801, error: '0xA801 move destination unknown' });
    m.retrieveAttempt({ level: 'IMAGE', ...ok, failed: 1 });
    m.retrieveAttempt({ level: 'STUDY', ...ok });
    assert.equal(await value(m, 'scannode_retrieve_attempts_total', { level: 'SERIES' }), 2);
    assert.equal(await value(m, 'scannode_retrieve_attempts_total', { level: 'IMAGE' }), 1);
    assert.equal(await value(m, 'scannode_retrieve_attempts_total', { level: 'STUDY' }), 1);
    assert.equal(await value(m, 'scannode_retrieve_failures_total', { level: 'SERIES' }), 1);
    assert.equal(await value(m, 'scannode_retrieve_failures_total', { level: 'IMAGE' }), 1);
    assert.equal(await value(m, 'scannode_retrieve_failures_total', { level: 'STUDY' }), undefined);
  });

  test('timeJob observes each scheduler run and passes its outcome on', async () => {
    const m = new Metrics({ log: fakeLog().log, defaultMetrics: false });
    let calls = 0;
    const okJob = m.timeJob(async () => void calls++);
    const badJob = m.timeJob(() => Promise.reject(new Error('scanner down')));
    await okJob();
    await okJob();
    await assert.rejects(badJob(), /scanner down/);
    assert.equal(calls, 2);
    assert.equal(await value(m, 'scannode_scheduler_runs_total', { result: 'ok' }), 2);
    assert.equal(await value(m, 'scannode_scheduler_runs_total', { result: 'error' }), 1);
    const h = 'scannode_scheduler_run_duration_seconds';
    assert.equal(await value(m, h, {}, `${h}_count`), 3);
    m.schedulerRun(45_000, true);
    assert.equal(await value(m, h, { le: 30 }, `${h}_bucket`), 3);
    assert.equal(await value(m, h, { le: 60 }, `${h}_bucket`), 4);
  });

  test('without a database: all four scan states at 0; active associations and disk free read at scrape', async () => {
    let active = 3;
    const m = new Metrics({ log: fakeLog().log, activeAssociations: () => active, dataDir: os.tmpdir() });
    for (const state of ['active', 'finished', 'failed', 'cancelled']) {
      assert.equal(await value(m, 'scannode_scans', { state }), 0, state);
    }
    assert.equal(await value(m, 'scannode_associations_active'), 3);
    active = 1;
    assert.equal(await value(m, 'scannode_associations_active'), 1);
    assert.ok((await value(m, 'scannode_disk_free_bytes'))! > 0);
    assert.equal(await value(m, 'scannode_spool_instances'), 0);
    const text = await m.registry.metrics();
    assert.match(text, /^process_cpu_user_seconds_total /m, 'default process metrics');
    assert.match(text, /^nodejs_eventloop_lag_seconds /m);
  });

  test('each node has its own registry; the global one stays empty', async () => {
    const a = new Metrics({ log: fakeLog().log });
    const b = new Metrics({ log: fakeLog().log });
    a.associationClosed({ accepted: true });
    assert.equal(await value(a, 'scannode_associations_total', { result: 'accepted' }), 1);
    assert.equal(await value(b, 'scannode_associations_total', { result: 'accepted' }), 0);
    assert.equal(globalRegister.getSingleMetric('scannode_associations_total'), undefined);
    assert.equal(globalRegister.getSingleMetric('process_cpu_user_seconds_total'), undefined);
  });

  test('database gauges read a real SQLite index; a failing query keeps the last value and warns once', async (t) => {
    const { db, done } = await openTestDatabase('sqlite');
    t.after(done);
    const scan = (id: string, state: ScanRow['state']): ScanRow => ({
      id,
      studyInstanceUid: null,
      accessionNumber: `A${id}`,
      patientId: null,
      studyDate: null,
      mppsUid: null,
      state,
      source: 'api',
      fileName: null,
      reason: null,
      requestedAt: new Date(),
      updatedAt: new Date(),
      completedAt: null,
    });
    for (const [id, state] of [
      ['1', 'active'],
      ['2', 'active'],
      ['3', 'failed'],
    ] as const)
      await insertScan(db, scan(id, state));
    const attrs = { text: () => undefined, int: () => undefined, json: '{}' };
    const file = (n: number, state: 'spooled' | 'archived', size: number) =>
      indexRows(attrs, {
        sop: `1.2.3.4.${n}`,
        sopClass: '1.2.840.10008.5.1.4.1.1.4',
        study: '1.2.3',
        series: '1.2.3.4',
        path: `incoming/1.2.3.4.${n}.dcm`,
        size,
        transferSyntaxUid: '1.2.840.10008.1.2.1',
        state,
        source: 'dimse',
        callingAe: null,
      });
    const rows = [
      ...[1, 2, 3].map((n) => file(n, 'spooled', 1000)),
      ...[4, 5, 6, 7, 8].map((n) => file(n, 'archived', 10_400)),
    ];
    await insertInstanceBatch(
      db,
      [rows[0]!.groups],
      rows.map((r) => r.row),
    );
    const { log, lines } = fakeLog();
    let activeFails = false;
    const m = new Metrics({
      db,
      log,
      defaultMetrics: false,
      dataDir: path.join(os.tmpdir(), 'scannode-no-such-dir', String(process.pid)),
      activeAssociations: () => {
        if (activeFails) throw new Error('listener gone');
        return 4;
      },
    });
    const expect = async () => {
      assert.equal(await value(m, 'scannode_scans', { state: 'active' }), 2);
      assert.equal(await value(m, 'scannode_scans', { state: 'failed' }), 1);
      assert.equal(await value(m, 'scannode_scans', { state: 'finished' }), 0);
      assert.equal(await value(m, 'scannode_scans', { state: 'cancelled' }), 0);
      assert.equal(await value(m, 'scannode_spool_instances'), 3);
      assert.equal(await value(m, 'scannode_spool_bytes'), 3000);
      assert.equal(await value(m, 'scannode_archive_instances'), 5);
      assert.equal(await value(m, 'scannode_archive_bytes'), 52_000);
      assert.equal(await value(m, 'scannode_associations_active'), 4);
    };
    const text = await m.registry.metrics();
    assert.match(text, /^scannode_spool_instances 3$/m);
    assert.match(text, /^scannode_scans\{state="active"\} 2$/m);
    await expect();
    assert.equal(lines.filter((l) => l.level === 'warn').length, 1, 'statfs of a missing dir warned once');

    // The tables go away under the node (a real failing query, no stand-in): the last values stay.
    const hide = () =>
      db.source
        .query('ALTER TABLE scans RENAME TO scans_gone')
        .then(() => db.source.query('ALTER TABLE instances RENAME TO instances_gone'));
    const show = () =>
      db.source
        .query('ALTER TABLE scans_gone RENAME TO scans')
        .then(() => db.source.query('ALTER TABLE instances_gone RENAME TO instances'));
    await hide();
    activeFails = true;
    await m.registry.metrics();
    await m.registry.metrics();
    await expect();
    const warns = lines.filter((l) => l.level === 'warn');
    assert.equal(warns.length, 4, 'scans, instances, active associations: one warning each for the streak');

    await show();
    await m.registry.metrics();
    await hide();
    await m.registry.metrics();
    assert.equal(lines.filter((l) => l.level === 'warn').length, 6, 'a new failure streak warns again');
    await show();
  });
});

describe('GET /metrics', () => {
  const services = (metrics: Metrics | undefined) => ({ metrics: metrics?.registry }) as unknown as HttpServices;

  test('answers the registry in the Prometheus text format', async () => {
    const m = new Metrics({ log: fakeLog().log, defaultMetrics: false });
    m.storeCompleted({ association: { ...AE, callingAe: 'CT1' }, status: 0, bytes: 12, durationMs: 5 });
    const app = Fastify();
    registerMetricsRoute(app, services(m));
    try {
      const res = await app.inject({ method: 'GET', url: '/metrics' });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['content-type'], m.registry.contentType);
      assert.match(res.body, /^# TYPE scannode_instances_received_total counter$/m);
      assert.match(res.body, /^scannode_instances_received_total\{calling_ae="CT1",remote="unknown"\} 1$/m);
      assert.match(res.body, /^scannode_bytes_received_total\{calling_ae="CT1",remote="unknown"\} 12$/m);
    } finally {
      await app.close();
    }
  });

  test('404 with a JSON error when the node has no registry', async () => {
    const app = Fastify();
    registerMetricsRoute(app, services(undefined));
    try {
      const res = await app.inject({ method: 'GET', url: '/metrics' });
      assert.equal(res.statusCode, 404);
      const body = res.json<{ error: string; message: string }>();
      assert.equal(typeof body.error, 'string');
      assert.match(body.message, /metrics/);
    } finally {
      await app.close();
    }
  });
});
