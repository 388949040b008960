// The host install (issue 17), run by .ci/run as its own step (npm run test:install, minutes rather than seconds):
// the Debian package installed with apt into a clean Debian root (the cached debootstrap of trixie that
// .ci/debian-root.sh makes), where the installed scannode runs as its unit's ExecStart would (PID 1 is not systemd
// here): ready only once the DICOM port listens, answers C-ECHO, stores a study, stops on SIGTERM; then an upgrade
// keeps the admin's config, remove keeps config and data, purge removes the config and still keeps the data.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, needPeer, run, stopProcess } from '../helpers/peers.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';
import {
  BUILD_TOOLS,
  REPO,
  cachedDebianRoot,
  copyRoot,
  debUnderTest,
  hasTools,
  inRoot,
  needTools,
  notifyListener,
  parseServiceUnit,
  startAsUnit,
} from '../helpers/debroot.js';

const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const DEB_VERSION = VERSION.replace('-', '~');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-install-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function ok(r: { code: number | null; stdout: string; stderr: string }, what: string): string {
  assert.equal(r.code, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** Whether something accepts a TCP connection on 127.0.0.1:port right now (one attempt). */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

describe('host install of the Debian package', () => {
  let deb: string | undefined;
  let buildFailure: string | undefined = 'not built: dpkg-deb or dpkg-shlibdeps missing';
  before(
    async () => {
      if (hasTools(...BUILD_TOOLS)) ({ deb, failure: buildFailure } = await debUnderTest(path.join(tmp, 'out')));
    },
    { timeout: 20 * 60_000 },
  );

  let root: string | undefined;

  test('installs into a clean Debian root; runs as its unit would: ready once listening, C-ECHO, a study stored, SIGTERM', async (t) => {
    if (!needTools(t, 'building the .deb needs', ...BUILD_TOOLS) || !needPeer(t, 'echoscu', 'storescu')) return;
    assert.ok(deb, `npm run package failed:\n${buildFailure}`);
    let started = Date.now();
    const base = await cachedDebianRoot(t);
    if (!base) return;
    t.diagnostic(`cached Debian root ready in ${seconds(started)}: ${base}`);
    started = Date.now();
    root = path.join(tmp, 'root');
    await copyRoot(base, root);
    t.diagnostic(`copied in ${seconds(started)}`);

    // Install as an admin would: apt resolves the Depends (all in the root already, so no download).
    started = Date.now();
    fs.copyFileSync(deb, path.join(root, 'tmp/scannode.deb'));
    ok(
      await inRoot(
        root,
        'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /tmp/scannode.deb',
      ),
      'apt-get install',
    );
    t.diagnostic(`installed in ${seconds(started)}`);
    const inside = async (script: string) => ok(await inRoot(root!, script), script);
    assert.match(await inside('dpkg-query -W -f "\\${Status} \\${Version}" scannode'), /install ok installed/);
    const [, uid, , , , shell] = (await inside('getent passwd scannode')).trim().split(':').slice(1);
    assert.ok(Number(uid) < 1000, `a system user (uid ${uid})`);
    assert.match(shell!, /nologin/);
    assert.equal((await inside('stat -c "%a %U:%G" /var/lib/scannode')).trim(), '750 scannode:scannode');
    assert.equal((await inside('stat -c "%a %U:%G" /etc/scannode/config.json')).trim(), '640 root:scannode');
    // As root the command runs as the user scannode, reading the config it may read.
    assert.equal((await inside('scannode --version')).trim(), VERSION);
    assert.equal((await inside('scannode -V')).trim(), VERSION);
    assert.equal(
      (JSON.parse(await inside('scannode config check')) as { dataDir: string }).dataDir,
      '/var/lib/scannode',
    );

    // Configure: ports of this shared machine's choosing, on loopback.
    const dicomPort = await freePort();
    const httpPort = await freePort();
    const configFile = path.join(root, 'etc/scannode/config.json');
    const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, Record<string, unknown>>;
    config.dicom = { ...config.dicom, host: '127.0.0.1', port: dicomPort };
    config.http = { ...config.http, port: httpPort };
    fs.writeFileSync(configFile, JSON.stringify(config, null, 2));

    const unit = parseServiceUnit(fs.readFileSync(path.join(root, 'usr/lib/systemd/system/scannode.service'), 'utf8'));
    assert.equal(unit.user, 'scannode');
    fs.mkdirSync(path.join(root, 'run'), { recursive: true });
    const notify = await notifyListener(path.join(root, 'run/scannode-test-notify.sock'));
    t.after(() => notify.stop());
    started = Date.now();
    const node = startAsUnit(root, unit, { NOTIFY_SOCKET: '/run/scannode-test-notify.sock' });
    t.after(() => stopProcess(node));
    let log = '';
    node.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    node.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => node.once('exit', (code) => resolve(code)));

    const ready = await Promise.race([
      notify.waitFor('READY=1', 120_000),
      exited.then((code) => assert.fail(`scannode exited (${code}) before it was ready:\n${log}`)),
    ]);
    assert.ok(await listening(dicomPort), 'the DICOM port listens when READY=1 arrives');
    t.diagnostic(`READY=1 after ${seconds(started)}`);
    // scannode logs that it told systemd once systemd-notify has returned, i.e. after the message arrived here.
    for (const end = Date.now() + 30_000; !log.includes('told systemd: ready') && Date.now() < end;) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(
      ready,
      new RegExp(`STATUS=scannode ${VERSION.replace(/[.+]/g, '\\$&')}: SCANNODE on DICOM port ${dicomPort}`),
    );
    assert.match(log, new RegExp(`scannode starting version=${VERSION.replace(/[.+]/g, '\\$&')} `));
    assert.ok(log.indexOf('DICOM listener up') < log.indexOf('told systemd: ready'), log);

    const echo = await run('echoscu', ['-aec', 'SCANNODE', '127.0.0.1', String(dicomPort)]);
    assert.equal(echo.code, 0, echo.stderr);
    const study = generateStudy({ dir: path.join(tmp, 'study'), series: 2, perSeries: 2 });
    const store = await run('storescu', [
      '-aec',
      'SCANNODE',
      '127.0.0.1',
      String(dicomPort),
      ...study.map((i) => i.file),
    ]);
    assert.equal(store.code, 0, store.stderr);
    assert.doesNotMatch(store.stderr, /E:|Failed/);
    const stored = listFiles(path.join(root, 'var/lib/scannode'));
    for (const i of study) {
      const found = stored.filter((f) => path.basename(f) === `${i.sopInstanceUid}.dcm`);
      assert.equal(found.length, 1, `${i.sopInstanceUid} stored once under /var/lib/scannode`);
      assert.deepEqual(datasetBytes(found[0]!), datasetBytes(i.file));
      assert.equal(fs.statSync(found[0]!).uid, Number(uid), 'written by the user scannode');
    }
    const health = await fetch(`http://127.0.0.1:${httpPort}/health`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { version: string }).version, VERSION);

    node.kill('SIGTERM');
    assert.equal(await exited, 0, log);
    assert.match(log, /SIGTERM: shutting down/);
    assert.match(log, /scannode stopped/);
    assert.equal(await listening(dicomPort), false);
  });

  test('an upgrade keeps the admin config; remove keeps config and data; purge removes the config, keeps the data', async (t) => {
    if (!root) return t.skip('needs the installed root of the test before');
    const inside = async (script: string) => ok(await inRoot(root!, script), script);
    const configFile = path.join(root, 'etc/scannode/config.json');
    const edited = fs.readFileSync(configFile, 'utf8');
    const dataBefore = listFiles(path.join(root, 'var/lib/scannode')).length;
    assert.ok(dataBefore > 0);

    // The next version: the same package with a higher Debian version.
    const newer = `${DEB_VERSION}+upgrade1`;
    await inside(
      [
        'dpkg-deb -R /tmp/scannode.deb /tmp/next',
        `sed -i "s/^Version: .*/Version: ${newer}/" /tmp/next/DEBIAN/control`,
        'dpkg-deb -Zgzip -z1 --root-owner-group -b /tmp/next /tmp/scannode-next.deb >/dev/null',
        'DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/scannode-next.deb',
      ].join(' && '),
    );
    assert.match(await inside('dpkg-query -W -f "\\${Version}" scannode'), new RegExp(`\\+upgrade1$`));
    assert.equal(fs.readFileSync(configFile, 'utf8'), edited, 'the edited config survives the upgrade');
    assert.equal((await inside('stat -c "%a %U:%G" /etc/scannode/config.json')).trim(), '640 root:scannode');

    await inside('DEBIAN_FRONTEND=noninteractive apt-get remove -y -q scannode');
    assert.ok(!fs.existsSync(path.join(root, 'usr/bin/scannode')));
    assert.equal(fs.readFileSync(configFile, 'utf8'), edited, 'remove keeps the config');
    assert.equal(listFiles(path.join(root, 'var/lib/scannode')).length, dataBefore, 'remove keeps the data');

    const purge = await inRoot(root, 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -q scannode');
    ok(purge, 'apt-get purge');
    assert.match(purge.stderr, /\/var\/lib\/scannode .* kept/);
    assert.ok(!fs.existsSync(path.join(root, 'etc/scannode')), 'purge removes /etc/scannode');
    assert.equal(
      (await inRoot(root, 'dpkg-statoverride --list /etc/scannode/config.json')).code,
      1,
      'no override left',
    );
    assert.equal(listFiles(path.join(root, 'var/lib/scannode')).length, dataBefore, 'purge keeps the data');
    assert.match(await inside('getent passwd scannode'), /^scannode:/, 'and the user that owns it');
  });
});
