import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test, after, before } from 'node:test';
import { run } from '../helpers/peers.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-cli-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('scannode CLI', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
  });
  after(async () => node?.destroy());

  test('config check prints the effective config, and exits 2 listing every problem when invalid', async () => {
    const good = await run(process.execPath, [CLI, 'config', 'check', '--config', 'config/config.json']);
    assert.equal(good.code, 0, good.stderr);
    assert.equal(JSON.parse(good.stdout).dicom.aeTitle, 'SCANNODE');
    const badFile = path.join(tmp, 'bad.json');
    fs.writeFileSync(badFile, JSON.stringify({ dicom: { port: 70000 }, databse: {} }));
    const bad = await run(process.execPath, [CLI, 'config', 'check', '--config', badFile]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /dicom\.port: /);
    assert.match(bad.stderr, /databse: unknown key/);
    // Secrets are shown as set, never printed.
    const secretFile = path.join(tmp, 'secret.json');
    fs.writeFileSync(
      secretFile,
      JSON.stringify({
        database: { type: 'postgres', url: 'postgres://scannode:s3cret-pw@db:5432/scannode' },
        http: { token: 'tok-0123456789abcdef' },
      }),
    );
    const secret = await run(process.execPath, [CLI, 'config', 'check', '--config', secretFile]);
    assert.equal(secret.code, 0, secret.stderr);
    assert.doesNotMatch(secret.stdout, /s3cret-pw|tok-0123456789abcdef/);
    const shown = JSON.parse(secret.stdout) as { database: { url: string }; http: { token: string } };
    assert.equal(shown.database.url, 'postgres://scannode:***@db:5432/scannode');
    assert.equal(shown.http.token, '(set, hidden)');
  });

  test('echo AET@HOST:PORT exits 0 on success, 1 when the peer refuses, 2 on a malformed peer', async () => {
    const ok = await run(process.execPath, [CLI, 'echo', `SCANNODE@127.0.0.1:${node.port}`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /success/);
    const refused = await run(process.execPath, [CLI, 'echo', `WRONGAE@127.0.0.1:${node.port}`]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /association rejected/);
    const malformed = await run(process.execPath, [CLI, 'echo', 'nonsense']);
    assert.equal(malformed.code, 2);
  });
});
