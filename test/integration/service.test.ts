// scannode as a service (issue 17): `scannode --version`, the version in /health and in the start-up log line,
// readiness for systemd's Type=notify only once the DICOM port listens (through systemd-notify, to a stand-in notify
// socket), and log lines the journal files by priority when stderr is the journal.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort, run } from '../helpers/peers.js';
import { REPO, needTools, notifyListener } from '../helpers/debroot.js';

const CLI = path.join(REPO, 'dist/src/cli.js');
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-service-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** A config of its own (free ports, SQLite, scheduler off) in a folder of its own. */
async function nodeConfig(name: string): Promise<{ file: string; dicomPort: number; httpPort: number }> {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  const dicomPort = await freePort();
  const httpPort = await freePort();
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      dicom: { host: '127.0.0.1', port: dicomPort, shutdownGraceSeconds: 1 },
      http: { port: httpPort },
      dataDir: 'data',
      scheduler: { enabled: false },
      import: { watchInbox: false },
    }),
  );
  return { file, dicomPort, httpPort };
}

/** `scannode start` with stdout and stderr into `logFile`; env without systemd's variables unless given. */
function startNode(configFile: string, logFile: string, env: Record<string, string> = {}) {
  const fd = fs.openSync(logFile, 'a');
  const base = { ...process.env };
  delete base.NOTIFY_SOCKET;
  delete base.JOURNAL_STREAM;
  const child = spawn(process.execPath, [CLI, 'start', '--config', configFile], {
    env: { ...base, ...env },
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return exited;
  };
  return { child, exited, stop, log: () => fs.readFileSync(logFile, 'utf8') };
}

async function health(port: number, timeoutMs = 60_000): Promise<{ status: number; body: Record<string, unknown> }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const escaped = (s: string) => s.replace(/[.+]/g, '\\$&');

describe('scannode as a service', () => {
  test('--version and -V print the version of package.json, and exit 0', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await run(process.execPath, [CLI, flag]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${VERSION}\n`);
    }
  });

  test('under systemd: READY=1 only once the DICOM port listens; the version in the log line and /health; journal lines', async (t) => {
    if (!needTools(t, 'the readiness test needs', 'systemd-notify', 'python3')) return;
    const { file, dicomPort, httpPort } = await nodeConfig('notify');
    const notify = await notifyListener(path.join(tmp, 'notify.sock'));
    t.after(() => notify.stop());
    // stderr is "the journal": JOURNAL_STREAM names its device and inode, as systemd does.
    const logFile = path.join(tmp, 'journal.log');
    fs.writeFileSync(logFile, '');
    const st = fs.statSync(logFile);
    const node = startNode(file, logFile, {
      NOTIFY_SOCKET: path.join(tmp, 'notify.sock'),
      JOURNAL_STREAM: `${st.dev}:${st.ino}`,
    });
    t.after(() => node.stop());

    const ready = await Promise.race([
      notify.waitFor('READY=1', 60_000),
      node.exited.then((code) => assert.fail(`exited (${code}) before ready:\n${node.log()}`)),
    ]);
    assert.ok(await listening(dicomPort), 'the DICOM port listens when READY=1 arrives');
    assert.match(
      ready,
      new RegExp(`STATUS=scannode ${escaped(VERSION)}: SCANNODE on DICOM port ${dicomPort}, HTTP port ${httpPort}`),
    );
    assert.equal(notify.messages.filter((m) => m.includes('READY=1')).length, 1, 'ready once');

    const h = await health(httpPort);
    assert.equal(h.status, 200);
    assert.equal(h.body.version, VERSION);

    assert.equal(await node.stop(), 0);
    const lines = node.log().trim().split('\n');
    // Priority prefixes instead of timestamps (the journal stamps lines itself): info 6, and so on.
    assert.match(lines[0]!, new RegExp(`^<6>info scannode starting version=${escaped(VERSION)} node=v`));
    assert.ok(
      lines.every((l) => /^<[3467]>(error|warn|info|debug) /.test(l)),
      lines.join('\n'),
    );
    const up = lines.findIndex((l) => l.startsWith('<6>info DICOM listener up'));
    const told = lines.findIndex((l) => l.startsWith('<6>info told systemd: ready'));
    assert.ok(up >= 0 && told > up, lines.join('\n'));
  });

  test('outside systemd nothing is notified and lines carry timestamps; a failing systemd-notify is logged, the node stays up', async (t) => {
    const plain = await nodeConfig('plain');
    const plainLog = path.join(tmp, 'plain.log');
    const a = startNode(plain.file, plainLog);
    t.after(() => a.stop());
    assert.equal((await health(plain.httpPort)).body.version, VERSION);
    assert.equal(await a.stop(), 0);
    assert.match(
      a.log(),
      new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z info scannode starting version=${escaped(VERSION)} `),
    );
    assert.doesNotMatch(a.log(), /systemd/);

    if (!needTools(t, 'the notify failure test needs', 'systemd-notify')) return;
    const broken = await nodeConfig('broken');
    const b = startNode(broken.file, path.join(tmp, 'broken.log'), {
      NOTIFY_SOCKET: path.join(tmp, 'nobody-listens.sock'),
    });
    t.after(() => b.stop());
    assert.equal((await health(broken.httpPort)).status, 200);
    const deadline = Date.now() + 30_000;
    while (!/cannot tell systemd/.test(b.log()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.match(b.log(), /error cannot tell systemd that scannode is ready \(systemd-notify failed\)/);
    assert.ok(await listening(broken.dicomPort));
    assert.equal(await b.stop(), 0);
  });
});
