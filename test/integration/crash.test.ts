import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test, after } from 'node:test';
import Database from 'better-sqlite3';
import { needPeer, freePort, waitForPort, dcmtkEnv, stopProcess } from '../helpers/peers.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-crash-'));
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) await stopProcess(c);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const logs = new Map<ChildProcess, string>();
function startCli(config: string): ChildProcess {
  const child = spawn(process.execPath, [CLI, 'start', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  logs.set(child, '');
  const keep = (d: Buffer) => logs.set(child, (logs.get(child)! + d.toString()).slice(-4000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return child;
}

async function listening(child: ChildProcess, port: number): Promise<void> {
  try {
    await waitForPort(port, 20_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}; node said:\n${logs.get(child)}`);
  }
}

describe('crash safety', () => {
  test('kill -9 of the node mid-transfer: after a restart every acknowledged instance is there', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const port = await freePort();
    const config = path.join(tmp, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        dicom: { host: '127.0.0.1', port },
        http: { port: 0 },
        dataDir: './data',
        log: { level: 'warn' },
      }),
    );
    const study = generateStudy({ dir: path.join(tmp, 'study'), series: 2, perSeries: 150, rows: 256, columns: 256 });
    const byFile = new Map(study.map((s) => [s.file, s]));

    const node = startCli(config);
    await listening(node, port);
    const sender = spawn(
      'storescu',
      ['-v', '-nh', '-aec', 'SCANNODE', '127.0.0.1', String(port), ...study.map((s) => s.file)],
      { env: dcmtkEnv },
    );
    let out = '';
    const acknowledged: string[] = [];
    let current: string | undefined;
    let killed = false;
    await new Promise<void>((resolve) => {
      const onLine = (line: string) => {
        const sending = /Sending file: (.*)$/.exec(line);
        if (sending) current = sending[1]!.trim();
        if (/Received Store Response \(Success\)/.test(line) && current) acknowledged.push(current);
        if (!killed && acknowledged.length >= 60) {
          killed = true;
          node.kill('SIGKILL');
        }
      };
      let buf = '';
      const feed = (d: Buffer) => {
        out += d.toString();
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        lines.forEach(onLine);
      };
      sender.stdout.on('data', feed);
      sender.stderr.on('data', feed);
      sender.on('close', () => resolve());
    });
    assert.ok(killed, `node was killed mid-transfer (${acknowledged.length} acknowledged)\n${out.slice(-500)}`);
    assert.ok(acknowledged.length < study.length, 'the transfer was cut short');

    const restarted = startCli(config);
    await listening(restarted, port);
    const dataDir = path.join(tmp, 'data');
    const db = new Database(path.join(dataDir, 'scannode.sqlite'), { readonly: true });
    try {
      const rows = new Set(
        (db.prepare('select sop_instance_uid as sop from instances').all() as Array<{ sop: string }>).map((r) => r.sop),
      );
      for (const file of acknowledged) {
        const inst = byFile.get(file)!;
        assert.ok(rows.has(inst.sopInstanceUid), `acknowledged ${inst.sopInstanceUid} indexed`);
        const stored = path.join(dataDir, 'incoming', `${inst.sopInstanceUid}.dcm`);
        assert.ok(datasetBytes(stored).equals(datasetBytes(file)), 'stored intact');
      }
      assert.deepEqual(
        listFiles(path.join(dataDir, 'incoming')).filter((f) => f.endsWith('.part')),
        [],
        'partial files removed',
      );
    } finally {
      db.close();
    }
    await stopProcess(restarted);
    assert.equal(restarted.exitCode, 0, 'SIGTERM shuts down cleanly with exit 0');
  });

  test('SIGTERM mid-transfer: the association in flight finishes, every instance is stored, exit 0', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const port = await freePort();
    const dir = path.join(tmp, 'graceful');
    fs.mkdirSync(dir, { recursive: true });
    const config = path.join(dir, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        dicom: { host: '127.0.0.1', port, shutdownGraceSeconds: 60 },
        http: { port: 0 },
        dataDir: './data',
        log: { level: 'warn' },
      }),
    );
    const study = generateStudy({ dir: path.join(dir, 'study'), series: 1, perSeries: 120, rows: 256, columns: 256 });
    const node = startCli(config);
    await listening(node, port);
    const sender = spawn(
      'storescu',
      ['-v', '-aec', 'SCANNODE', '127.0.0.1', String(port), ...study.map((s) => s.file)],
      {
        env: dcmtkEnv,
      },
    );
    let acks = 0;
    let signalled = false;
    const senderDone = new Promise<number | null>((resolve) => {
      const count = (d: Buffer) => {
        acks += (d.toString().match(/Received Store Response \(Success\)/g) ?? []).length;
        if (!signalled && acks >= 10) {
          signalled = true;
          node.kill('SIGTERM');
        }
      };
      sender.stdout.on('data', count);
      sender.stderr.on('data', count);
      sender.on('close', (code) => resolve(code));
    });
    const nodeExit = new Promise<number | null>((resolve) => node.on('exit', (code) => resolve(code)));
    assert.equal(await senderDone, 0, 'storescu finished its association without error');
    assert.equal(await nodeExit, 0, 'the node exited 0 after the association ended');
    assert.equal(acks, study.length, 'every instance acknowledged');
    const stored = listFiles(path.join(dir, 'data', 'incoming')).filter((f) => f.endsWith('.dcm'));
    assert.equal(stored.length, study.length);
  });
});
