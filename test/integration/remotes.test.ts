import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { insertScan } from '../../src/db/scanStore.js';
import type { ScanRow } from '../../src/db/scanEntities.js';
import { DB_KINDS, needDb, openTestDatabase } from '../helpers/db.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { call } from '../helpers/http.js';
import { startTestNode } from '../helpers/node.js';
import { freePort, needPeer, startProcess, stopProcess, storeAll, waitForPort } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';
import { startDcmqrscp } from '../helpers/dcmqrscp.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-remotes-it-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

type Json = Record<string, unknown>;

describe('remotes', () => {
  test('an association from a configured remote is named in the audit and in /api/remotes', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const node = await startTestNode({
      extra: {
        scanner: 'mr3t',
        remotes: {
          mr3t: { aeTitle: 'MR3T', host: '127.0.0.1', port: await freePort(), roles: { retrieve: true } },
          pacs: { aeTitle: 'PACS', host: '127.0.0.1', port: await freePort(), roles: { send: false, store: true } },
        },
      },
    });
    t.after(() => node.destroy());
    const study = generateStudy({ dir: path.join(tmp, 'mr'), series: 1, perSeries: 2 });
    await storeAll(node, study, { aet: 'MR3T' });
    await storeAll(node, study, { aet: 'VISITOR' });
    const rows = await waitFor('two audit rows', async () => {
      const r = await call(node, 'GET', '/api/associations');
      return (r.json.total as number) >= 2 ? (r.json.associations as Json[]) : undefined;
    });
    assert.deepEqual(rows.map((a) => [a.callingAe, a.remote]).sort(), [
      ['MR3T', 'mr3t'],
      ['VISITOR', null],
    ]);
    const remotes = (await call(node, 'GET', '/api/remotes')).json.remotes as Json[];
    assert.deepEqual(
      remotes.map((r) => [r.name, r.scanner, (r.lastAssociation as Json | null)?.instancesReceived ?? null]),
      [
        ['mr3t', true, 2],
        ['pacs', false, null],
      ],
    );
    assert.deepEqual((remotes[1] as Json).roles, { send: false, retrieve: false, store: true });
    const state = (remotes[0] as Json).state as Json;
    assert.equal(state.reachable, true, 'its accepted associations count as reachable');
    assert.equal((remotes[1] as Json).state && ((remotes[1] as Json).state as Json).reachable, null, 'pacs not seen');
    const onPage = ((await call(node, 'GET', '/api/status')).json.remotes as Json[]).map((r) => [
      r.name,
      (r.state as Json).reachable,
    ]);
    assert.deepEqual(onPage, [
      ['mr3t', true],
      ['pacs', null],
    ]);
    const addr = node.node.http.server.address() as AddressInfo;
    const metrics = await (await fetch(`http://127.0.0.1:${addr.port}/metrics`)).text();
    assert.match(metrics, /^scannode_instances_received_total\{calling_ae="MR3T",remote="mr3t",node="[^"]+"\} 2$/m);
    assert.match(
      metrics,
      /^scannode_instances_received_total\{calling_ae="VISITOR",remote="unknown",node="[^"]+"\} 2$/m,
    );
  });

  test('a scan request naming an unknown source, or one we may not retrieve from, is refused with the reason', async (t) => {
    const node = await startTestNode({
      extra: {
        scanner: 'mr3t',
        remotes: {
          mr3t: { aeTitle: 'MR3T', host: '127.0.0.1', port: await freePort(), roles: { retrieve: true } },
          pacs: { aeTitle: 'PACS', host: '127.0.0.1', port: await freePort(), roles: { send: false, retrieve: true } },
          ct: { aeTitle: 'CT1', host: '127.0.0.1', port: await freePort() },
        },
      },
    });
    t.after(() => node.destroy());
    const unknown = await call(node, 'POST', '/api/scans', { accessionNumber: 'A1', remote: 'nope' });
    assert.equal(unknown.status, 400);
    assert.match(JSON.stringify(unknown.json), /no remote named \\?"nope\\?" \(remotes: mr3t, pacs, ct\)/);
    const noRetrieve = await call(node, 'POST', '/api/scans', { accessionNumber: 'A1', remote: 'ct' });
    assert.equal(noRetrieve.status, 400);
    assert.match(JSON.stringify(noRetrieve.json), /remote \\?"ct\\?" may not be queried and retrieved from/);
    const pulled = await call(node, 'POST', '/api/scans', { accessionNumber: 'A2', remote: 'pacs' });
    assert.equal(pulled.status, 201, JSON.stringify(pulled.json));
    const row = await node.node.db.source
      .getRepository(node.node.db.entities.Scan)
      .findOneByOrFail({ accessionNumber: 'A2' });
    assert.equal(row.remote, 'pacs', 'the scan remembers where to retrieve from');

    const active = path.join(node.dataDir, 'active-scans');
    fs.writeFileSync(path.join(active, 'from-nowhere.json'), JSON.stringify({ accessionNumber: 'A3', remote: 'nope' }));
    const reason = await waitFor('the file moved to problem/', () => {
      const f = path.join(node.dataDir, 'problem', 'from-nowhere.json.reason.txt');
      return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : undefined;
    });
    assert.match(reason, /source no remote named "nope"/);

    const config = path.join(tmp, 'scan-add.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        dataDir: path.join(tmp, 'cli-data'),
        database: { type: 'sqlite', path: path.join(tmp, 'cli.sqlite') },
        remotes: { mr3t: { aeTitle: 'MR3T', host: '127.0.0.1', port: 104, roles: { retrieve: true } } },
        scanner: 'mr3t',
      }),
    );
    const r = spawnSync(
      process.execPath,
      [CLI, 'scan', 'add', '--accession', 'A4', '--remote', 'nope', '--config', config],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 2, r.stdout);
    assert.match(r.stderr, /source no remote named "nope" \(remotes: mr3t\)/);
  });

  test('scannode remotes --echo answers per remote and fails when one does not answer', async (t) => {
    if (!needPeer(t, 'storescp')) return;
    const up = await freePort();
    const down = await freePort();
    const scp = startProcess('storescp', ['-aet', 'UPNODE', String(up)]);
    t.after(() => stopProcess(scp));
    await waitForPort(up);
    const config = path.join(tmp, 'echo.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        scanner: 'up',
        remotes: {
          up: { aeTitle: 'UPNODE', host: '127.0.0.1', port: up, roles: { retrieve: true } },
          gone: { aeTitle: 'GONE', host: '127.0.0.1', port: down, roles: { store: true } },
        },
      }),
    );
    const listed = spawnSync(process.execPath, [CLI, 'remotes', '--config', config], { encoding: 'utf8' });
    assert.equal(listed.status, 0, listed.stderr);
    assert.match(listed.stdout, /^\* up +UPNODE@127\.0\.0\.1:\d+ {2}roles=send,retrieve$/m);
    assert.match(listed.stdout, /^ {2}gone +GONE@127\.0\.0\.1:\d+ {2}roles=send,store$/m);
    const echoed = spawnSync(process.execPath, [CLI, 'remotes', '--echo', '--config', config], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(echoed.status, 1, 'one remote does not answer');
    assert.match(echoed.stdout, /up .*C-ECHO ok \(\d+ ms\)/);
    assert.match(echoed.stdout, /gone .*C-ECHO failed: /);
  });

  test('a request naming a PACS remote by accession is resolved and pulled from that PACS, not the scanner', async (t) => {
    if (!needPeer(t, 'dcmqrscp', 'dcmqridx')) return;
    const nodePort = await freePort();
    const study = generateStudy({ dir: path.join(tmp, 'pacs'), series: 1, perSeries: 3, accessionNumber: 'PACSACC1' });
    const pacs = await startDcmqrscp({
      aeTitle: 'PACS',
      destinations: [{ aeTitle: 'SCANNODE', port: nodePort }],
      files: study.map((s) => s.file),
    });
    t.after(() => pacs.destroy());
    const node = await startTestNode({
      dicom: { port: nodePort },
      extra: {
        // The scanner is down: whatever arrives came from the PACS.
        scanner: { aeTitle: 'NOSCANNER', host: '127.0.0.1', port: await freePort() },
        remotes: {
          pacs: { aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port, roles: { send: false, retrieve: true } },
        },
        scheduler: { enabled: true, cron: '0 0 0 1 1 *' },
        retrieve: { settleSeconds: 0, quietSeconds: 0, findTimeoutSeconds: 10, moveTimeoutSeconds: 30 },
        import: { watchInbox: false },
      },
    });
    t.after(() => node.destroy());
    const created = await call(node, 'POST', '/api/scans', { accessionNumber: 'PACSACC1', remote: 'pacs' });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    // And one from the scanner, which is down.
    assert.equal((await call(node, 'POST', '/api/scans', { accessionNumber: 'FROMSCANNER' })).status, 201);
    await node.node.scheduler.runNow();
    await node.node.scheduler.runNow();
    const rows = await waitFor('the study pulled from the PACS', async () => {
      const r = await node.instances();
      return r.length === study.length ? r : undefined;
    });
    assert.deepEqual(rows.map((r) => r.sopInstanceUid).sort(), study.map((s) => s.sopInstanceUid).sort());
    const detail = await call(node, 'GET', `/api/scans/${study[0]!.studyInstanceUid}`);
    assert.equal(detail.json.remote, 'pacs');
    // What the status page shows of each: our C-FINDs and C-MOVEs are the outcomes.
    const remotes = (await call(node, 'GET', '/api/remotes')).json.remotes as Array<{
      name: string;
      state: { reachable: boolean | null; lastError: string | null; lastSuccessAt: string | null };
    }>;
    const state = (name: string) => remotes.find((r) => r.name === name)?.state;
    assert.equal(state('pacs')?.reachable, true, 'the PACS answered');
    assert.ok(state('pacs')?.lastSuccessAt);
    assert.equal(state('scanner')?.reachable, false, 'the scanner did not');
    assert.match(String(state('scanner')?.lastError), /the scanner is not reachable/);
  });

  test('a scanner name that is not a remote stops the node with a clear config error', () => {
    const config = path.join(tmp, 'bad.json');
    fs.writeFileSync(config, JSON.stringify({ scanner: 'mr7t', remotes: {} }));
    const r = spawnSync(process.execPath, [CLI, 'config', 'check', '--config', config], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr + r.stdout, /scanner: no remote named "mr7t" \(remotes: none\)/);
  });
});

for (const kind of DB_KINDS) {
  test(`${kind}: a scan row keeps its source remote (migration 0032)`, async (t) => {
    if (!(await needDb(t, kind))) return;
    const { db, done } = await openTestDatabase(kind);
    t.after(done);
    const now = new Date();
    const row: ScanRow = {
      id: randomUUID(),
      studyInstanceUid: null,
      accessionNumber: 'ACC9',
      patientId: null,
      studyDate: null,
      mppsUid: null,
      remote: 'pacs',
      state: 'active',
      source: 'api',
      fileName: 'accession-ACC9.json',
      reason: null,
      requestedAt: now,
      updatedAt: now,
      completedAt: null,
    };
    await insertScan(db, row);
    const back = await db.source.getRepository(db.entities.Scan).findOneByOrFail({ id: row.id });
    assert.equal(back.remote, 'pacs');
  });
}
