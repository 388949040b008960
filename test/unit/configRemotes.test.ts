import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-remotes-'));
let n = 0;
function load(obj: unknown) {
  const f = path.join(dir, `c${++n}.json`);
  fs.writeFileSync(f, JSON.stringify(obj));
  return loadConfig(f, {}).config;
}
function problems(obj: unknown): string {
  try {
    load(obj);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems.join('\n');
  }
  assert.fail('the config was accepted');
}

const pacs = { aeTitle: 'PACS', host: '127.0.0.1', port: 4242, roles: { send: false, retrieve: true, store: true } };

test("today's scanner object still works and becomes the remote named scanner", () => {
  const config = load({ scanner: { aeTitle: 'MR1', host: '127.0.0.1', port: 104 } });
  assert.equal(config.scanner.name, 'scanner');
  assert.equal(config.scanner.aeTitle, 'MR1');
  assert.deepEqual(config.remotes.scanner?.roles, { send: true, retrieve: true, store: false });
});

test('no scanner at all gives the old defaults', () => {
  const config = load({});
  assert.equal(config.scanner.aeTitle, 'SCANNER');
  assert.equal(config.scanner.port, 104);
});

test('scanner may name a remote; the remote keeps its roles', () => {
  const config = load({
    scanner: 'mr3t',
    remotes: { mr3t: { aeTitle: 'MR3T', host: '127.0.0.1', port: 104, roles: { retrieve: true } }, pacs },
  });
  assert.equal(config.scanner.name, 'mr3t');
  assert.equal(config.scanner.aeTitle, 'MR3T');
  assert.deepEqual(config.scanner.roles, { send: true, retrieve: true, store: false });
  assert.equal(config.remotes.pacs?.roles.store, true);
});

test('a remote named scanner is the scanner when the key is absent', () => {
  const config = load({ remotes: { scanner: { aeTitle: 'CT1', host: '127.0.0.1', port: 105 } } });
  assert.equal(config.scanner.aeTitle, 'CT1');
});

test('a scanner name that does not exist is a clear config error listing the remotes', () => {
  assert.match(problems({ scanner: 'mr7t', remotes: { pacs } }), /scanner: no remote named "mr7t" \(remotes: pacs\)/);
});

test('a scanner object beside a remote named scanner is refused as ambiguous', () => {
  assert.match(problems({ scanner: { aeTitle: 'A' }, remotes: { scanner: pacs } }), /remotes\.scanner exists/);
});

test('a forward rule must name remotes we may store to', () => {
  const text = problems({
    remotes: { pacs, viewer: { ...pacs, aeTitle: 'VIEW', roles: { store: false } } },
    forward: [{ to: ['pacs', 'xnat', 'viewer'] }],
  });
  assert.match(text, /forward\.0\.to\.1: no remote named "xnat"/);
  assert.match(text, /forward\.0\.to\.2: remote "viewer" does not have roles\.store/);
  assert.doesNotMatch(text, /to\.0/);
});
test('a forward rule gets its defaults and a bad series filter is refused', () => {
  const config = load({ remotes: { pacs }, forward: [{ to: ['pacs'] }] });
  assert.deepEqual(config.forward[0], { to: ['pacs'], when: 'finished' });
  assert.equal(config.forwarding.maxTries, 20);
  assert.match(
    problems({ remotes: { pacs }, forward: [{ to: ['pacs'], seriesDescription: '(' }] }),
    /seriesDescription/,
  );
});
