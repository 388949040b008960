import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { RemoteError } from '../../src/domain/remotes.js';
import { makeRequest, parseRequestFile, requestFileContent } from '../../src/domain/scanRequest.js';
import { peerForScan, sourceRemoteProblem } from '../../src/pipeline/remoteDirectory.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { remoteOf } from '../../src/domain/remotes.js';
import { fakeLog } from '../helpers/log.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-remotedir-'));
const file = path.join(dir, 'c.json');
fs.writeFileSync(
  file,
  JSON.stringify({
    remotes: {
      mr: { aeTitle: 'MR1', host: '10.0.0.5', port: 104, roles: { retrieve: true } },
      pacs: { aeTitle: 'PACS', host: '10.0.0.9', port: 4242, roles: { send: false, retrieve: true, store: true } },
      ct: { aeTitle: 'CT1', host: '10.0.0.6', port: 104 },
    },
    scanner: 'mr',
  }),
);
const config = loadConfig(file, {}).config;

test('a scan is retrieved from its named remote, else from the scanner', () => {
  assert.deepEqual(peerForScan(config, { remote: null }), { aeTitle: 'MR1', host: '10.0.0.5', port: 104 });
  assert.deepEqual(peerForScan(config, {}), { aeTitle: 'MR1', host: '10.0.0.5', port: 104 });
  assert.deepEqual(peerForScan(config, { remote: 'pacs' }), { aeTitle: 'PACS', host: '10.0.0.9', port: 4242 });
  assert.throws(() => peerForScan(config, { remote: 'ct' }), RemoteError);
});

test('a request naming an unknown remote, or one we may not retrieve from, is refused with the known names', () => {
  assert.equal(sourceRemoteProblem(config.remotes, config.scanner.name, undefined), undefined);
  assert.equal(sourceRemoteProblem(config.remotes, config.scanner.name, 'pacs'), undefined);
  assert.equal(
    sourceRemoteProblem(config.remotes, config.scanner.name, 'nope'),
    'source no remote named "nope" (remotes: mr, pacs, ct)',
  );
  assert.match(sourceRemoteProblem(config.remotes, config.scanner.name, 'ct')!, /remote "ct" may not be queried/);
});

test('an accession-only request may name a PACS; the remote survives the request file round trip', () => {
  const r = makeRequest({ accessionNumber: 'A123', remote: 'pacs' });
  assert.ok(r.ok);
  assert.equal(r.spec.remote, 'pacs');
  const content = requestFileContent({
    ...r.spec,
    state: 'active',
    source: 'api',
    requestedAt: new Date(0),
    mppsStatus: null,
  });
  const back = parseRequestFile('accession-A123.json', content);
  assert.ok(back.ok);
  assert.equal(back.spec.remote, 'pacs');
  const none = makeRequest({ accessionNumber: 'A123' });
  assert.ok(none.ok);
  assert.equal(none.spec.remote, undefined, 'no remote: the scanner');
  const bad = makeRequest({ accessionNumber: 'A1', remote: 'a/b' });
  assert.ok(!bad.ok);
  assert.match(bad.reason, /not a remote name/);
});

test('C-STORE metrics name the configured remote, "unknown" for any other AE', async () => {
  const m = new Metrics({
    log: fakeLog().log,
    defaultMetrics: false,
    remoteOf: (ae, a) => remoteOf(config.remotes, ae, a),
  });
  const assoc = { id: 'x', calledAe: 'SCANNODE', remoteAddress: '10.0.0.6', remotePort: 1 };
  m.storeCompleted({ association: { ...assoc, callingAe: 'CT1' }, status: 0, bytes: 1, durationMs: 1 });
  m.storeCompleted({ association: { ...assoc, callingAe: 'WHO' }, status: 0, bytes: 1, durationMs: 1 });
  const text = await m.registry.metrics();
  assert.match(text, /scannode_instances_received_total\{calling_ae="CT1",remote="ct"\} 1/);
  assert.match(text, /scannode_instances_received_total\{calling_ae="WHO",remote="unknown"\} 1/);
});
