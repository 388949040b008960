// The host install (issue 17): the Debian package `npm run package` builds, its systemd unit checked by
// systemd-analyze, and the package installed into a clean Debian root (cached debootstrap of trixie), where the
// installed scannode runs as its unit's ExecStart would: ready only once the DICOM port listens, answers C-ECHO,
// stores a study, stops on SIGTERM; then an upgrade keeps the admin's config, remove and purge keep the data.
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
  REPO,
  cachedDebianRoot,
  copyRoot,
  hasTools,
  inRoot,
  needTools,
  notifyListener,
  parseServiceUnit,
  startAsUnit,
} from '../helpers/debroot.js';

const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const DEB_VERSION = VERSION.replace('-', '~');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-package-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const BUILD_TOOLS = ['dpkg-deb', 'dpkg-shlibdeps', 'dpkg-statoverride'];

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

describe('Debian package (npm run package)', () => {
  let deb: string | undefined;
  let buildFailure = '';
  let buildTime = '';
  before(
    async () => {
      if (!hasTools(...BUILD_TOOLS)) return;
      const started = Date.now();
      const r = await run('bash', [path.join(REPO, '.ci/package-deb.sh'), '--out', path.join(tmp, 'out')], {
        timeoutMs: 20 * 60_000,
      });
      if (r.code !== 0) buildFailure = `${r.stdout}\n${r.stderr}`;
      else {
        deb = path.join(
          tmp,
          'out',
          fs.readdirSync(path.join(tmp, 'out')).find((f) => f.endsWith('.deb'))!,
        );
        buildTime = seconds(started);
      }
    },
    { timeout: 20 * 60_000 },
  );

  test('the .deb carries the version, the Debian dependencies, the unit, the conffile and no dev dependency', async (t) => {
    if (!needTools(t, 'building the .deb needs', ...BUILD_TOOLS)) return;
    assert.ok(deb, `npm run package failed:\n${buildFailure}`);
    t.diagnostic(`built ${path.basename(deb)} in ${buildTime}`);
    assert.match(path.basename(deb), new RegExp(`^scannode_${DEB_VERSION.replace(/[.+~]/g, '\\$&')}_[a-z0-9]+\\.deb$`));
    const fields = ok(await run('dpkg-deb', ['-f', deb, 'Package', 'Version', 'Depends']), 'dpkg-deb -f');
    assert.match(fields, /^Package: scannode$/m);
    assert.match(fields, new RegExp(`^Version: ${DEB_VERSION.replace(/[.+~]/g, '\\$&')}$`, 'm'));
    // Debian's nodejs of the addon's ABI (Node 20), the user tool, and what the addon links against.
    assert.match(fields, /^Depends: nodejs \(>= 20\.19\), nodejs \(<< 21\), adduser, libc6 \(>= [\d.]+\)/m);
    assert.equal(ok(await run('dpkg-deb', ['-I', deb, 'conffiles']), 'conffiles').trim(), '/etc/scannode/config.json');

    const listing = ok(await run('dpkg-deb', ['-c', deb]), 'dpkg-deb -c')
      .trim()
      .split('\n');
    const files = new Map(
      listing.map((l) => [
        l
          .split(/\s+/)
          .slice(5)
          .join(' ')
          .replace(/ -> .*/, ''),
        l,
      ]),
    );
    for (const f of [
      './usr/bin/scannode',
      './usr/lib/scannode/package.json',
      './usr/lib/scannode/dist/src/cli.js',
      './usr/lib/scannode/dist/src/http/ui/index.html',
      './usr/lib/scannode/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      './usr/lib/systemd/system/scannode.service',
      './etc/scannode/config.json',
      './usr/share/doc/scannode/OPERATIONS.md',
      './usr/share/doc/scannode/examples/port-below-1024.conf',
    ]) {
      assert.ok(files.has(f), `${f} is in the package`);
    }
    assert.match(files.get('./usr/bin/scannode')!, /^-rwxr-xr-x root\/root /);
    assert.ok(
      listing.every((l) => l.split(/\s+/)[1] === 'root/root'),
      'every file belongs to root',
    );
    for (const devOnly of ['typescript', 'eslint', 'playwright-core', 'prettier', '@types/node']) {
      assert.ok(!files.has(`./usr/lib/scannode/node_modules/${devOnly}/`), `${devOnly} is not shipped`);
    }
    const ours = [...files.keys()].filter((f) => f.startsWith('./usr/lib/scannode/dist/'));
    assert.ok(ours.length > 0 && ours.every((f) => f.startsWith('./usr/lib/scannode/dist/src/')), 'no tests');
    assert.ok(!ours.some((f) => /\.(ts|map)$/.test(f)), 'compiled code only');

    // The version comes from the installed package.json, wherever the package's files are.
    const x = path.join(tmp, 'extracted');
    ok(await run('dpkg-deb', ['-x', deb, x]), 'dpkg-deb -x');
    for (const flag of ['--version', '-V']) {
      const v = await run(process.execPath, [path.join(x, 'usr/lib/scannode/dist/src/cli.js'), flag]);
      assert.equal(v.code, 0, v.stderr);
      assert.equal(v.stdout.trim(), VERSION);
    }
  });

  test('systemd-analyze verify passes on the unit as installed, also with the port-104 drop-in; exposure stays low', async (t) => {
    if (!needTools(t, 'checking the unit needs', 'systemd-analyze', ...BUILD_TOOLS)) return;
    assert.ok(deb, `npm run package failed:\n${buildFailure}`);
    // A root holding the system's own units (targets the unit pulls in) and the package: its ExecStart exists there.
    const root = path.join(tmp, 'verify-root');
    const units = path.join(root, 'usr/lib/systemd/system');
    fs.mkdirSync(units, { recursive: true });
    if (fs.existsSync('/usr/lib/systemd/system')) fs.cpSync('/usr/lib/systemd/system', units, { recursive: true });
    ok(await run('dpkg-deb', ['-x', deb, root]), 'dpkg-deb -x');
    const verify = (unit: string) =>
      run('systemd-analyze', ['verify', '--man=no', '--generators=no', `--root=${root}`, unit]);
    const clean = (r: { code: number | null; stdout: string; stderr: string }, what: string) => {
      assert.equal(r.code, 0, `${what}:\n${r.stdout}${r.stderr}`);
      assert.equal(`${r.stdout}${r.stderr}`.trim(), '', `${what} says nothing`);
    };
    clean(await verify('scannode.service'), 'verify scannode.service');

    const security = await run('systemd-analyze', [
      'security',
      '--offline=true',
      `--root=${root}`,
      '--threshold=30',
      '--no-pager',
      'scannode.service',
    ]);
    const exposure = /Overall exposure level for scannode\.service: ([\d.]+)/.exec(security.stdout);
    assert.equal(security.code, 0, `exposure above 3.0:\n${security.stdout}${security.stderr}`);
    assert.ok(exposure, security.stdout);
    t.diagnostic(`systemd-analyze security: exposure ${exposure[1]}`);

    const dropIns = path.join(root, 'etc/systemd/system/scannode.service.d');
    fs.mkdirSync(dropIns, { recursive: true });
    fs.copyFileSync(
      path.join(root, 'usr/share/doc/scannode/examples/port-below-1024.conf'),
      path.join(dropIns, 'port-below-1024.conf'),
    );
    clean(await verify('scannode.service'), 'verify with the drop-in');

    // The check can fail: a misspelt key and a missing binary are reported.
    const broken = fs
      .readFileSync(path.join(units, 'scannode.service'), 'utf8')
      .replace('Restart=on-failure', 'Restrat=on-failure')
      .replace('/usr/bin/scannode', '/usr/bin/scannode-missing');
    fs.writeFileSync(path.join(root, 'etc/systemd/system/scannode-broken.service'), broken);
    const bad = await verify('scannode-broken.service');
    assert.match(`${bad.stdout}${bad.stderr}`, /Unknown key 'Restrat'/);
    assert.match(`${bad.stdout}${bad.stderr}`, /scannode-missing/);
  });

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
