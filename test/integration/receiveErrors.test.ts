import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, test, before, after } from 'node:test';
import { needPeer, run, CI } from '../helpers/peers.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';
import { rawStore } from '../helpers/rawStore.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-errors-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** One generated MR image as implicit VR little endian (what the raw sender declares). */
async function implicitInstance(name: string) {
  const [inst] = generateStudy({ dir: path.join(tmp, name), series: 1, perSeries: 1 });
  const out = path.join(tmp, name, 'implicit.dcm');
  assert.equal((await run('dcmconv', ['+ti', inst!.file, out])).code, 0, 'dcmconv +ti');
  return { ...inst!, file: out };
}

async function echoOk(node: TestNode): Promise<void> {
  const r = await run('echoscu', ['-aec', 'SCANNODE', '127.0.0.1', String(node.port)]);
  assert.equal(r.code, 0, `node still answers C-ECHO: ${r.stderr}`);
}

describe('bad data is refused with a failure status and the node stays up', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
  });
  after(async () => node?.destroy());

  test('bytes that are not DICOM on the port (an HTTP request): the connection is closed, the node stays up', async (t) => {
    if (!needPeer(t, 'echoscu')) return;
    const socket = net.connect(node.port, '127.0.0.1');
    const closed = new Promise<string>((resolve) => {
      const got: Buffer[] = [];
      socket.on('data', (b: Buffer) => got.push(b));
      socket.on('close', () => resolve(Buffer.concat(got).toString('latin1')));
      socket.on('error', () => undefined);
    });
    socket.write('GET / HTTP/1.1\r\nHost: scannode\r\n\r\n');
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('the node kept the connection open')), 10_000).unref(),
    );
    const answer = await Promise.race([closed, timeout]);
    assert.doesNotMatch(answer, /HTTP/, 'no HTTP answer on the DICOM port');
    await echoOk(node);
  });

  test('data that is not DICOM: C000-range', async (t) => {
    if (!needPeer(t, 'echoscu')) return;
    const r = await rawStore({
      port: node.port,
      sopInstanceUid: '1.2.3.4.5.6',
      bytes: Buffer.from('this is a text file, not a DICOM data set!!'),
    });
    assert.ok(r.status !== undefined && r.status >= 0xc000 && r.status <= 0xcfff, `status 0x${r.status?.toString(16)}`);
    assert.equal((await node.instances()).length, 0);
    await echoOk(node);
  });

  test('a data set cut inside its pixel data: 0xC001 truncated, nothing kept', async (t) => {
    if (!needPeer(t, 'echoscu')) return;
    const inst = await implicitInstance('trunc');
    const whole = datasetBytes(inst.file);
    const r = await rawStore({
      port: node.port,
      sopInstanceUid: inst.sopInstanceUid,
      bytes: whole.subarray(0, whole.length - 1000),
    });
    assert.equal(r.status, 0xc001);
    assert.equal((await node.instances()).length, 0);
    assert.deepEqual(listFiles(path.join(node.dataDir, 'incoming')), [], 'no file, no .part left');
    await echoOk(node);
  });

  test('a data set cut inside its header: C000-range', async () => {
    const inst = await implicitInstance('trunc2');
    const r = await rawStore({
      port: node.port,
      sopInstanceUid: inst.sopInstanceUid,
      bytes: datasetBytes(inst.file).subarray(0, 101),
    });
    assert.ok(r.status !== undefined && r.status >= 0xc000 && r.status <= 0xcfff, `status 0x${r.status?.toString(16)}`);
  });

  test('SOP Instance UID 1.2.3/../../x is refused (0xC002) and nothing is written outside dataDir', async () => {
    const before = listFiles(tmp).concat(listFiles(node.dir));
    const inst = await implicitInstance('evil');
    const r = await rawStore({ port: node.port, sopInstanceUid: '1.2.3/../../x', bytes: datasetBytes(inst.file) });
    assert.equal(r.status, 0xc002);
    const afterFiles = listFiles(tmp)
      .concat(listFiles(node.dir))
      .filter((f) => !f.endsWith('.log') && !f.includes('db.sqlite'));
    const added = afterFiles.filter((f) => !before.includes(f) && !f.startsWith(path.join(tmp, 'evil')));
    assert.deepEqual(added, []);
    assert.ok(!fs.existsSync(path.join(node.dataDir, '..', 'x')));
  });

  test('a data set whose SOP Instance UID differs from the command: 0xA900', async () => {
    const inst = await implicitInstance('mismatch');
    const r = await rawStore({ port: node.port, sopInstanceUid: '1.2.3.4.999', bytes: datasetBytes(inst.file) });
    assert.equal(r.status, 0xa900);
  });
});

describe('association policy', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode({ dicom: { allowedCallingAeTitles: ['GOODSCU'], maxAssociations: 4 } });
  });
  after(async () => node?.destroy());

  test('a called AE title other than ours is rejected (called AE not recognized)', async (t) => {
    if (!needPeer(t, 'echoscu')) return;
    const r = await run('echoscu', ['-aet', 'GOODSCU', '-aec', 'NOTUS', '127.0.0.1', String(node.port)]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr + r.stdout, /Called AE Title Not Recognized/i);
  });

  test('a calling AE title not in allowedCallingAeTitles is rejected (calling AE not recognized)', async (t) => {
    if (!needPeer(t, 'echoscu')) return;
    const r = await run('echoscu', ['-aet', 'STRANGER', '-aec', 'SCANNODE', '127.0.0.1', String(node.port)]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr + r.stdout, /Calling AE Title Not Recognized/i);
    const ok = await run('echoscu', ['-aet', 'GOODSCU', '-aec', 'SCANNODE', '127.0.0.1', String(node.port)]);
    assert.equal(ok.code, 0, ok.stderr);
    const audit = await node.node.db.source
      .getRepository(node.node.db.entities.Association)
      .findBy({ callingAe: 'STRANGER' });
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.accepted, false);
    assert.match(audit[0]!.rejectReason ?? '', /not allowed/);
  });
});

describe('out of disk space', () => {
  const mnt = path.join(tmp, 'small-fs');
  let mounted = false;
  let node: TestNode | undefined;
  before(() => {
    fs.mkdirSync(mnt, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: 'ignore' });
      mounted = true;
    } catch {
      mounted = false;
    }
  });
  after(async () => {
    await node?.destroy();
    if (mounted) execFileSync('umount', [mnt]);
  });

  test('a full disk answers A700, leaves nothing partial, and the node stays up', async (t) => {
    if (!needPeer(t, 'storescu', 'echoscu')) return;
    if (!mounted) {
      if (CI) throw new Error('cannot mount a 1 MB tmpfs (needs root)');
      return t.skip('cannot mount a 1 MB tmpfs (needs root)');
    }
    node = await startTestNode({ dataDir: path.join(mnt, 'data') });
    // 6 x ~130 KB fits, the 1 MB filesystem fills up during the rest.
    const study = generateStudy({ dir: path.join(tmp, 'full'), series: 1, perSeries: 12, rows: 256, columns: 256 });
    const r = await run('storescu', [
      '-v',
      '-nh',
      '-aec',
      'SCANNODE',
      '127.0.0.1',
      String(node.port),
      ...study.map((s) => s.file),
    ]);
    const out = r.stdout + r.stderr;
    assert.match(out, /Received Store Response \(Refused: OutOfResources/, 'A700 reported');
    assert.match(out, /Received Store Response \(Success\)/, 'what fitted was stored');
    const rows = await node.instances();
    const spool = listFiles(path.join(node.dataDir, 'incoming'));
    assert.deepEqual(
      spool.filter((f) => f.endsWith('.part')),
      [],
      'no partial file',
    );
    assert.equal(spool.length, rows.length, 'every file on disk has its row and vice versa');
    for (const row of rows) {
      const sent = study.find((s) => s.sopInstanceUid === row.sopInstanceUid)!;
      assert.ok(datasetBytes(path.join(node.dataDir, row.path)).equals(datasetBytes(sent.file)));
    }
    await echoOk(node);
  });
});
