// The host install (issue 17), the checks that need no Debian root: the package `npm run package` builds (its
// version, dependencies, files) and its systemd unit checked by systemd-analyze as installed. The install itself, into
// a clean Debian root, is test/install/host.test.ts (its own CI step: it takes minutes).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/peers.js';
import { BUILD_TOOLS, REPO, debUnderTest, hasTools, needTools } from '../helpers/debroot.js';

const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const DEB_VERSION = VERSION.replace('-', '~');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-package-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function ok(r: { code: number | null; stdout: string; stderr: string }, what: string): string {
  assert.equal(r.code, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

describe('Debian package (npm run package)', () => {
  let deb: string | undefined;
  let buildFailure: string | undefined = 'not built: dpkg-deb or dpkg-shlibdeps missing';
  let buildTime = '';
  before(
    async () => {
      if (!hasTools(...BUILD_TOOLS)) return;
      ({ deb, failure: buildFailure, took: buildTime } = await debUnderTest(path.join(tmp, 'out')));
    },
    { timeout: 20 * 60_000 },
  );

  test('the .deb carries the version, the Debian dependencies, the unit, the conffile and no dev dependency', async (t) => {
    if (!needTools(t, 'building the .deb needs', ...BUILD_TOOLS)) return;
    assert.ok(deb, `npm run package failed:\n${buildFailure}`);
    t.diagnostic(`${path.basename(deb)}: ${buildTime}`);
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
    const ours = [...files.keys()].filter((f) => f.startsWith('./usr/lib/scannode/dist/') && !f.endsWith('/'));
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
});
