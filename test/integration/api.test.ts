import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestNode } from '../helpers/node.js';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { freePort, needPeer, run, needNode, storeAll } from '../helpers/peers.js';
import { generateStudy, newUid } from '../helpers/dicomgen.js';
import { waitFor } from '../helpers/waitFor.js';
import { baseUrl, call } from '../helpers/http.js';
import { createDataset, nCreate, nSet, performedSeries } from '../helpers/mppsClient.js';
import { buildHttpApp } from '../../src/http/server.js';
import { createLogger } from '../../src/logging/logger.js';
import type { Importer } from '../../src/pipeline/importer.js';

const TOKEN = 'api-test-token-0123456789';

/** Server-sent events of a response body, one {event, data} per blank-line-terminated block. */
async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length) yield { event, data: data.join('\n') };
    }
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-api-'));

type Json = Record<string, unknown>;
const list = (j: Json, key: string) => j[key] as Json[];

async function startNode(t: TestContext, kind: (typeof DB_KINDS)[number], token?: string) {
  if (!needPeer(t, 'storescu', 'echoscu') || !(await needDb(t, kind))) return undefined;
  // A scanner port where nothing listens: its C-FIND fails at once and MPPS decides completion.
  const scannerPort = await freePort();
  return startTestNode({
    kind,
    extra: {
      ...(token && { http: { port: 0, token } }),
      scanner: { aeTitle: 'NOSCANNER', host: '127.0.0.1', port: scannerPort },
      scheduler: { enabled: true, cron: '0 0 0 1 1 *' },
      retrieve: { settleSeconds: 0, findTimeoutSeconds: 5 },
      import: { watchInbox: false },
    },
  });
}

for (const kind of DB_KINDS) {
  describe(`HTTP API on ${kind}`, () => {
    test('health, scans (POST, list, paging, detail), studies search, associations', async (t) => {
      const node = await startNode(t, kind);
      if (!needNode(t, node)) return;
      const study = generateStudy({
        dir: path.join(tmp, `a-${kind}`),
        series: 2,
        perSeries: 3,
        patientId: 'API-P1',
        accessionNumber: 'ACCAPI1',
        extra: { StudyDate: '20240105' },
      });
      const studyUid = study[0]!.studyInstanceUid;
      const mpps = newUid();
      let created!: Awaited<ReturnType<typeof call>>;
      let byAcc!: Awaited<ReturnType<typeof call>>;
      // Each step builds on the one before; a failure names its step.
      try {
        await t.test('health', async () => {
          const health = await call(node, 'GET', '/health');
          assert.equal(health.status, 200);
          assert.deepEqual(health.json.database, { ok: true, type: kind });
          assert.equal((health.json.dicom as Json).listening, true);
        });
        await t.test('POST /api/scans: a request by StudyInstanceUID, its file in active-scans/', async () => {
          created = await call(node, 'POST', '/api/scans', { studyInstanceUid: studyUid });
          assert.equal(created.status, 201, JSON.stringify(created.json));
          assert.equal(created.headers.get('location'), `/api/scans/${studyUid}`);
          assert.equal(created.json.state, 'active');
          assert.equal(created.json.source, 'api');
          assert.ok(fs.existsSync(path.join(node.dataDir, 'active-scans', `${studyUid}.json`)));
          const again = await call(node, 'POST', '/api/scans', { studyInstanceUid: studyUid });
          assert.equal(again.status, 200);
          assert.equal(again.json.created, false);
          assert.equal(again.json.id, created.json.id);
          // An accession-only request stays unresolved (no study) until the scanner's C-FIND names one.
          byAcc = await call(node, 'POST', '/api/scans', { accessionNumber: 'ACC-ONLY-9' });
          assert.equal(byAcc.status, 201);
          assert.equal(byAcc.json.studyInstanceUid, null);
          assert.equal(byAcc.headers.get('location'), `/api/scans/${String(byAcc.json.id)}`);
        });
        await t.test('images arrive: received per series, MPPS states expected per series', async () => {
          await storeAll(node, study.slice(0, 4), { aet: 'APISCU' });
          assert.equal((await nCreate(node.port, mpps, createDataset({ studyInstanceUid: studyUid }))).status, 0);
          assert.equal((await nSet(node.port, mpps, { PerformedSeriesSequence: performedSeries(study) })).status, 0);
          const detail = await call(node, 'GET', `/api/scans/${studyUid}`);
          assert.equal(detail.status, 200);
          assert.equal(detail.json.mppsStatus, 'IN PROGRESS');
          assert.equal(detail.json.requestFile, `active-scans/${studyUid}.json`);
          assert.equal(detail.json.archivePath, `site/raw/${studyUid}`);
          // The N-SET triggers a pass that may already have tried to pull the 2 missing images from the scanner, which
          // is down: such an attempt shows as a connection error, nothing retrieved.
          for (const a of list(detail.json, 'retrieveAttempts')) {
            assert.equal(a.completed, null);
            assert.match(String(a.error), /cannot connect to NOSCANNER/);
          }
          const series = list(detail.json, 'series').map((s) => [s.seriesNumber, s.modality, s.expected, s.received]);
          assert.deepEqual(series, [
            [1, 'MR', 3, 3],
            [2, 'MR', 3, 1],
          ]);
          assert.equal(detail.json.expected, 6);
          assert.equal(detail.json.received, 4);
          // The same scan by its request id.
          assert.equal(
            (await call(node, 'GET', `/api/scans/${String(created.json.id)}`)).json.studyInstanceUid,
            studyUid,
          );
        });
        await t.test('list, state filter and paging', async () => {
          const active = await call(node, 'GET', '/api/scans?state=active');
          assert.equal(active.status, 200);
          assert.equal(active.json.total, 2);
          assert.deepEqual(
            list(active.json, 'scans').map((s) => s.id),
            [created.json.id, byAcc.json.id],
          );
          const page2 = await call(node, 'GET', '/api/scans?state=active&limit=1&offset=1');
          assert.equal(page2.json.total, 2);
          assert.deepEqual(
            list(page2.json, 'scans').map((s) => s.id),
            [byAcc.json.id],
          );
          assert.equal((await call(node, 'GET', '/api/scans?state=finished')).json.total, 0);
        });
        await t.test('the rest of the images and MPPS COMPLETED: the scan finishes, the API says so', async () => {
          await storeAll(node, study.slice(4), { aet: 'APISCU' });
          assert.equal((await nSet(node.port, mpps, { PerformedProcedureStepStatus: 'COMPLETED' })).status, 0);
          await node.node.scheduler.runNow();
          const done = await waitFor('the scan to finish', async () => {
            const r = await call(node, 'GET', `/api/scans/${studyUid}`);
            return r.json.state === 'finished' ? r.json : undefined;
          });
          assert.equal(done.summaryFile, `finished-scans/${studyUid}.json`);
          assert.ok(fs.existsSync(path.join(node.dataDir, 'finished-scans', `${studyUid}.json`)));
          assert.equal(done.requestFile, null);
          assert.equal(done.received, 6);
          const finished = await call(node, 'GET', '/api/scans?state=finished');
          assert.deepEqual(
            list(finished.json, 'scans').map((s) => s.studyInstanceUid),
            [studyUid],
          );
        });
        await t.test('a second study of another patient, then the study search', async () => {
          const other = generateStudy({
            dir: path.join(tmp, `b-${kind}`),
            series: 1,
            perSeries: 2,
            patientId: 'API-P2',
            accessionNumber: 'ACCAPI2',
            extra: { StudyDate: '20250310' },
          });
          await storeAll(node, other, { aet: 'OTHERSCU' });
          const all = await call(node, 'GET', '/api/studies');
          assert.equal(all.status, 200);
          assert.equal(all.json.total, 2);
          // Newest study date first.
          assert.deepEqual(
            list(all.json, 'studies').map((s) => s.accessionNumber),
            ['ACCAPI2', 'ACCAPI1'],
          );
          const p1 = await call(node, 'GET', '/api/studies?patientId=API-P1');
          assert.equal(p1.json.total, 1);
          const s1 = list(p1.json, 'studies')[0]!;
          assert.equal(s1.studyInstanceUid, studyUid);
          assert.equal(s1.instances, 6);
          assert.deepEqual(
            list(s1, 'series').map((s) => [s.seriesNumber, s.instances]),
            [
              [1, 3],
              [2, 3],
            ],
          );
          assert.equal((await call(node, 'GET', '/api/studies?patientId=API-P*')).json.total, 2);
          assert.equal((await call(node, 'GET', '/api/studies?patientId=API-P')).json.total, 0);
          assert.equal((await call(node, 'GET', '/api/studies?accessionNumber=ACCAPI2')).json.total, 1);
          assert.equal((await call(node, 'GET', '/api/studies?studyDate=20250101-')).json.total, 1);
          assert.equal((await call(node, 'GET', '/api/studies?studyDate=-20241231')).json.total, 1);
          assert.equal((await call(node, 'GET', '/api/studies?studyDate=20240105')).json.total, 1);
          assert.equal((await call(node, 'GET', '/api/studies?studyDate=20240101-20251231')).json.total, 2);
          const paged = await call(node, 'GET', '/api/studies?limit=1&offset=1');
          assert.equal(paged.json.total, 2);
          assert.deepEqual(
            list(paged.json, 'studies').map((s) => s.accessionNumber),
            ['ACCAPI1'],
          );
          const one = await call(node, 'GET', `/api/studies/${studyUid}`);
          assert.equal(one.status, 200);
          assert.equal((one.json.patient as Json).patientId, 'API-P1');
          assert.equal(one.json.instances, 6);
          assert.equal((await call(node, 'GET', `/api/studies/${newUid()}`)).status, 404);
        });
        await t.test('associations: the accepted ones with counts, and a rejected one with its reason', async () => {
          const rejected = await run('echoscu', ['-aet', 'APISCU', '-aec', 'WRONGAE', '127.0.0.1', String(node.port)]);
          assert.notEqual(rejected.code, 0);
          const assoc = await waitFor('the rejected association row', async () => {
            const r = await call(node, 'GET', '/api/associations?accepted=false');
            return (r.json.total as number) >= 1 ? r.json : undefined;
          });
          const rj = list(assoc, 'associations')[0]!;
          assert.equal(rj.callingAe, 'APISCU');
          assert.equal(rj.calledAe, 'WRONGAE');
          assert.match(String(rj.rejectReason), /called/i);
          const accepted = await call(node, 'GET', '/api/associations?accepted=true&callingAe=APISCU');
          const stores = list(accepted.json, 'associations').filter((a) => (a.instancesReceived as number) > 0);
          assert.deepEqual(stores.map((a) => a.instancesReceived).sort(), [2, 4]);
          assert.ok(stores.every((a) => (a.bytesReceived as number) > 0 && a.failures === 0));
          const byOther = await call(node, 'GET', '/api/associations?callingAe=OTHERSCU');
          assert.equal(byOther.json.total, 1);
          assert.equal(list(byOther.json, 'associations')[0]!.instancesReceived, 2);
        });
      } finally {
        await node.destroy();
      }
    });

    test('/api/status and /api/events: the snapshot, then a new one as images arrive', async (t) => {
      const node = await startNode(t, kind);
      if (!needNode(t, node)) return;
      const abort = new AbortController();
      try {
        const study = generateStudy({ dir: path.join(tmp, `sse-${kind}`), series: 1, perSeries: 3 });
        const studyUid = study[0]!.studyInstanceUid;
        assert.equal((await call(node, 'POST', '/api/scans', { studyInstanceUid: studyUid })).status, 201);
        const snap = await call(node, 'GET', '/api/status');
        assert.equal(snap.status, 200);
        assert.equal(snap.json.aeTitle, 'SCANNODE');
        assert.equal((snap.json.dicom as Json).listening, true);
        assert.equal(((snap.json.disk as Json).freeBytes as number) > 0, true);
        assert.equal((snap.json.scheduler as Json).paused, false);
        const active = snap.json.active as { total: number; scans: Json[] };
        assert.equal(active.total, 1);
        assert.equal(active.scans[0]!.studyInstanceUid, studyUid);

        const res = await fetch(`${baseUrl(node)}/api/events`, {
          headers: { accept: 'text/event-stream' },
          signal: abort.signal,
        });
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
        const events = sseEvents(res.body!);
        const first = await events.next();
        assert.equal(first.value?.event, 'status');
        const received = (e: Json) => ((e.active as { scans: Json[] }).scans[0]?.received as number | undefined) ?? -1;
        assert.equal(received(JSON.parse(first.value!.data) as Json), 0);
        await storeAll(node, study, { aet: 'APISCU' });
        // Without asking again, a later event carries the three images.
        for (;;) {
          const next = await events.next();
          assert.equal(next.done, false, 'the event stream ended');
          if (received(JSON.parse(next.value!.data) as Json) === 3) break;
        }
      } finally {
        abort.abort();
        await node.destroy();
      }
    });

    test('validation errors and unknown things are JSON with the right status', async (t) => {
      const node = await startNode(t, kind);
      if (!needNode(t, node)) return;
      try {
        const bad: Array<[string, string, unknown, number, RegExp]> = [
          ['POST', '/api/scans', {}, 400, /fewer than 1 properties|must NOT have fewer/],
          ['POST', '/api/scans', { studyInstanceUid: 123 }, 400, /studyInstanceUid must be string/],
          ['POST', '/api/scans', { studyInstanceUid: '1.2.abc' }, 400, /not a valid UID/],
          ['POST', '/api/scans', { studyInstanceUid: '1.2.3', accessionNumber: 'A' }, 400, /exactly one/],
          ['POST', '/api/scans', { accessionNumber: 'A', studyDate: '20240101' }, 400, /studyDate goes with patientId/],
          ['POST', '/api/scans', { patientId: 'P', studyDate: '2024-01-01' }, 400, /studyDate must match pattern/],
          ['POST', '/api/scans', { studyUid: '1.2.3' }, 400, /must NOT have additional properties/],
          ['POST', '/api/scans', '{"studyInstanceUid": ', 400, /JSON/i],
          ['GET', '/api/scans?state=bogus', undefined, 400, /state must be equal to one of the allowed values/],
          ['GET', '/api/scans?limit=0', undefined, 400, /limit must be >= 1/],
          ['GET', '/api/scans?limit=ten', undefined, 400, /limit must be integer/],
          ['GET', '/api/scans?colour=red', undefined, 400, /additional properties/],
          ['GET', '/api/scans/1.2.3.4.5', undefined, 404, /no scan request for 1\.2\.3\.4\.5/],
          ['GET', '/api/scans/not%20a%20key', undefined, 400, /key must match pattern/],
          ['GET', '/api/studies?studyDate=2024', undefined, 400, /studyDate must/],
          ['GET', '/api/studies?studyDate=-', undefined, 400, /studyDate/],
          ['GET', '/api/studies/abc', undefined, 400, /studyUid must match pattern/],
          ['GET', '/api/associations?accepted=maybe', undefined, 400, /accepted must be boolean/],
          ['GET', '/api/nothing-here', undefined, 404, /no route GET \/api\/nothing-here/],
          ['DELETE', '/api/scans', undefined, 404, /no route DELETE/],
        ];
        for (const [method, url, body, status, message] of bad) {
          const r = await call(node, method, url, body);
          assert.equal(r.status, status, `${method} ${url}: ${JSON.stringify(r.json)}`);
          assert.equal(typeof r.json.error, 'string', `${method} ${url}`);
          assert.match(String(r.json.message), message, `${method} ${url}`);
        }
        // Nothing was requested by the refused calls.
        assert.equal((await call(node, 'GET', '/api/scans')).json.total, 0);
        assert.deepEqual(fs.readdirSync(path.join(node.dataDir, 'active-scans')), []);
      } finally {
        await node.destroy();
      }
    });

    test('with http.token, writes need the bearer token and reads do not', async (t) => {
      const node = await startNode(t, kind, TOKEN);
      if (!needNode(t, node)) return;
      try {
        const body = { studyInstanceUid: newUid() };
        const none = await call(node, 'POST', '/api/scans', body);
        assert.equal(none.status, 401);
        assert.match(String(none.json.message), /bearer token is required/);
        const wrong = await call(node, 'POST', '/api/scans', body, { authorization: 'Bearer nope' });
        assert.equal(wrong.status, 401);
        assert.match(String(wrong.json.message), /wrong bearer token/);
        const basic = await call(node, 'POST', '/api/scans', body, { authorization: 'Basic dXNlcjpwYXNz' });
        assert.equal(basic.status, 401);
        const importNoToken = await call(node, 'POST', '/api/imports', { path: 'x' });
        assert.equal(importNoToken.status, 401);
        assert.equal((await call(node, 'GET', '/api/scans')).json.total, 0);
        const ok = await call(node, 'POST', '/api/scans', body, { authorization: `Bearer ${TOKEN}` });
        assert.equal(ok.status, 201);
        for (const url of ['/api/scans', '/api/studies', '/api/associations', '/api/status', '/health']) {
          assert.equal((await call(node, 'GET', url)).status, 200, url);
        }
      } finally {
        await node.destroy();
      }
    });
  });
}

test('on a non-loopback address without a token, write endpoints are refused (403) and reads work', async () => {
  const app = await buildHttpApp({
    http: { host: '0.0.0.0', port: 0, token: undefined } as never,
    dataDir: tmp,
    log: createLogger({ level: 'error', silent: true }),
    importer: {} as Importer,
  });
  try {
    const post = await app.inject({ method: 'POST', url: '/api/scans', payload: { studyInstanceUid: '1.2.3' } });
    assert.equal(post.statusCode, 403);
    assert.match(post.json<{ message: string }>().message, /set http\.token/);
    const health = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(health.statusCode, 200);
    // Built without a database: the data endpoints say what is missing.
    const scans = await app.inject({ method: 'GET', url: '/api/scans' });
    assert.equal(scans.statusCode, 503);
    assert.match(scans.json<{ message: string }>().message, /scan requests not available/);
  } finally {
    await app.close();
  }
});
