import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-config-'));
function write(obj: unknown): string {
  const f = path.join(dir, `c${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return f;
}

test('the shipped config/config.json is valid and gives the SPEC defaults', () => {
  const { config, dataDir } = loadConfig('config/config.json', {});
  assert.equal(config.dicom.aeTitle, 'SCANNODE');
  assert.equal(config.dicom.port, 11112);
  assert.equal(config.scheduler.cron, '*/15 * * * * *');
  assert.equal(config.database.type, 'sqlite');
  assert.equal(dataDir, path.resolve('data'), 'relative to the config file folder');
});

test('an empty object gets every default', () => {
  const { config } = loadConfig(write({}), {});
  assert.equal(config.dicom.maxAssociations, 16);
  assert.deepEqual(config.dicom.allowedCallingAeTitles, []);
  assert.equal(config.http.host, '127.0.0.1');
});

test('every problem is listed with its JSON path; an unknown key is a problem', () => {
  const f = write({ dicom: { port: 'x', aeTitel: 'A' }, scheduler: { enabled: 'yes' }, extra: 1 });
  assert.throws(
    () => loadConfig(f, {}),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const text = err.problems.join('\n');
      assert.match(text, /dicom\.port: .*number/);
      assert.match(text, /dicom\.aeTitel: unknown key/);
      assert.match(text, /scheduler\.enabled: .*boolean/);
      assert.match(text, /extra: unknown key/);
      return true;
    },
  );
  assert.throws(() => loadConfig(write('{ not json'), {}), /not valid JSON/);
});

test('SCANNODE_<SECTION>_<KEY> overrides, case-insensitively, with JSON values', () => {
  const { config } = loadConfig(write({}), {
    SCANNODE_DICOM_PORT: '4242',
    SCANNODE_DICOM_AETITLE: 'MYNODE',
    SCANNODE_DICOM_ALLOWEDCALLINGAETITLES: '["MRI1","CT2"]',
    SCANNODE_SCHEDULER_ENABLED: 'false',
    SCANNODE_DATABASE_TYPE: 'postgres',
    SCANNODE_DATABASE_URL: 'postgres://u@db:5432/scannode',
  });
  assert.equal(config.dicom.port, 4242);
  assert.equal(config.dicom.aeTitle, 'MYNODE');
  assert.deepEqual(config.dicom.allowedCallingAeTitles, ['MRI1', 'CT2']);
  assert.equal(config.scheduler.enabled, false);
  assert.deepEqual(config.database, { type: 'postgres', url: 'postgres://u@db:5432/scannode' });
  assert.throws(
    () => loadConfig(write({}), { SCANNODE_DICOM_PROT: '1' }),
    /SCANNODE_DICOM_PROT: "dicom" has no key "prot"/,
  );
});

test('an env value that looks like a number or a boolean stays text where the key is text', () => {
  const { config } = loadConfig(write({}), {
    SCANNODE_HTTP_TOKEN: '12345678901234567890',
    SCANNODE_DICOM_AETITLE: '1234',
    SCANNODE_SCANNER_HOST: 'true',
  });
  assert.equal(config.http.token, '12345678901234567890');
  assert.equal(config.dicom.aeTitle, '1234');
  assert.equal(config.scanner.host, 'true');
  // A number key still refuses text.
  assert.throws(() => loadConfig(write({}), { SCANNODE_DICOM_PORT: 'abc' }), /dicom\.port/);
});

test('dicom.pduTimeoutSeconds is gone: the error names the keys that replace it', () => {
  assert.throws(
    () => loadConfig(write({ dicom: { pduTimeoutSeconds: 60 } }), {}),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.problems.join('\n'),
        /dicom\.pduTimeoutSeconds: removed: use dicom\.idleTimeoutSeconds .*dicom\.artimTimeoutSeconds/,
      );
      return true;
    },
  );
  const { config } = loadConfig(write({}), {});
  assert.equal(config.dicom.artimTimeoutSeconds, 30);
  assert.equal(config.dicom.idleTimeoutSeconds, 60);
});

test('DICOM TLS: paths relative to the config file; the plain port may be off only when TLS is on', () => {
  const { config } = loadConfig(
    write({ dicom: { port: null, tls: { cert: 'tls/node.crt', key: 'tls/node.key', ca: '/etc/ca.pem' } } }),
    {},
  );
  assert.equal(config.dicom.port, null);
  assert.equal(config.dicom.tls?.port, 2762);
  assert.equal(config.dicom.tls?.cert, path.join(dir, 'tls/node.crt'));
  assert.equal(config.dicom.tls?.ca, '/etc/ca.pem');
  assert.equal(config.dicom.tls?.requireClientCert, false);
  assert.throws(
    () => loadConfig(write({ dicom: { port: null } }), {}),
    (err: unknown) =>
      err instanceof ConfigError &&
      /dicom\.port: null \(plain port off\) needs dicom\.tls/.test(err.problems.join('\n')),
  );
  const env = loadConfig(write({}), {
    SCANNODE_DICOM_PORT: 'null',
    SCANNODE_DICOM_TLS: '{"cert":"a.crt","key":"a.key"}',
  });
  assert.equal(env.config.dicom.port, null);
  assert.equal(env.config.dicom.tls?.key, path.join(dir, 'a.key'));
});
