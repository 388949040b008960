import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { describe, test, before, after } from 'node:test';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { needPeer, run, PYDICOM_DATA, needNode, storescu } from '../helpers/peers.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { generateStudy, type GeneratedInstance } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';
import { waitFor } from '../helpers/waitFor.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-receive-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Every sent file is in the spool, byte-identical after the meta header, and has its row. */
async function assertStored(node: TestNode, sent: GeneratedInstance[]): Promise<void> {
  const rows = new Map((await node.instances()).map((r) => [r.sopInstanceUid, r]));
  for (const s of sent) {
    const row = rows.get(s.sopInstanceUid);
    assert.ok(row, `row for ${s.sopInstanceUid}`);
    assert.equal(row.seriesInstanceUid, s.seriesInstanceUid);
    assert.equal(row.path, `incoming/${s.sopInstanceUid}.dcm`);
    const stored = path.join(node.dataDir, row.path);
    assert.ok(datasetBytes(stored).equals(datasetBytes(s.file)), `${s.sopInstanceUid} stored byte-identical`);
    assert.equal(row.size, fs.statSync(stored).size);
  }
}

for (const kind of DB_KINDS) {
  describe(`receive on ${kind}`, () => {
    let node: TestNode;
    before(async () => {
      if (!(await needDb({ skip: (why) => console.log(`# skipped: ${why}`) }, kind))) return;
      node = await startTestNode({ kind });
    });
    after(async () => node?.destroy());

    test('C-ECHO from echoscu succeeds', async (t) => {
      if (!needNode(t, node) || !needPeer(t, 'echoscu')) return;
      const r = await run('echoscu', ['-aec', 'SCANNODE', '127.0.0.1', String(node.port)]);
      assert.equal(r.code, 0, r.stderr);
    });

    test('storescu single files and a 2-series study are stored identical, in spool and database', async (t) => {
      if (!needNode(t, node) || !needPeer(t, 'storescu')) return;
      const study = generateStudy({ dir: path.join(tmp, kind, 'study'), series: 2, perSeries: 5 });
      const single = await storescu(node, [study[0]!.file]);
      assert.equal(single.code, 0, single.stderr);
      const all = await storescu(node, ['+sd', path.join(tmp, kind, 'study')]);
      assert.equal(all.code, 0, all.stderr);
      await assertStored(node, study);
      const db = node.node.db;
      const series = await db.source
        .getRepository(db.entities.Series)
        .findBy({ studyInstanceUid: study[0]!.studyInstanceUid });
      assert.equal(series.length, 2, 'both series indexed');
      const studyRow = await db.source
        .getRepository(db.entities.Study)
        .findOneBy({ studyInstanceUid: study[0]!.studyInstanceUid });
      assert.equal(studyRow?.accessionNumber, 'ACC1');
      // The audit row is written when the association closes, which may come just after storescu exits.
      await waitFor('the association audited with its count', async () => {
        const rows = await db.source.getRepository(db.entities.Association).find({ where: { callingAe: 'STORESCU' } });
        return rows.some((a) => a.instancesReceived === 10 && a.accepted);
      });
    });

    test('4 KiB PDUs (each data set in ~130 P-DATA-TF PDUs, cut anywhere by the socket) and an echo in between', async (t) => {
      if (!needNode(t, node) || !needPeer(t, 'storescu', 'echoscu')) return;
      const study = generateStudy({ dir: path.join(tmp, kind, 'smallpdu'), series: 1, perSeries: 4 });
      const r = await storescu(node, ['--max-send-pdu', '4096', '+sd', path.join(tmp, kind, 'smallpdu')]);
      assert.equal(r.code, 0, r.stderr);
      const echo = await run('echoscu', ['-aec', 'SCANNODE', '127.0.0.1', String(node.port)]);
      assert.equal(echo.code, 0, echo.stderr);
      await assertStored(node, study);
    });

    test('a header longer than the first 64 KiB is read from the spool file', async (t) => {
      if (!needNode(t, node) || !needPeer(t, 'storescu')) return;
      const dir = path.join(tmp, kind, 'bighead');
      const study = generateStudy({ dir, series: 1, perSeries: 2, extra: { TextValue: 'long-text.'.repeat(8000) } });
      const r = await storescu(node, ['+sd', dir]);
      assert.equal(r.code, 0, r.stderr);
      await assertStored(node, study);
      const db = node.node.db;
      const row = await db.source
        .getRepository(db.entities.Instance)
        .findOneByOrFail({ sopInstanceUid: study[0]!.sopInstanceUid });
      const header = JSON.parse(row.header) as Record<string, unknown>;
      assert.equal((header.TextValue as string).length, 80_000);
      assert.equal(header.InstanceNumber, 1);
    });

    test('4 parallel storescu senders: every instance stored once', async (t) => {
      if (!needNode(t, node) || !needPeer(t, 'storescu')) return;
      const dirs = [0, 1, 2, 3].map((i) => path.join(tmp, kind, `par${i}`));
      const studies = dirs.map((dir) => generateStudy({ dir, series: 1, perSeries: 8, rows: 128, columns: 128 }));
      const results = await Promise.all(dirs.map((d) => storescu(node, ['+sd', d])));
      results.forEach((r) => assert.equal(r.code, 0, r.stderr));
      await assertStored(node, studies.flat());
    });

    test('an identical re-send is answered Success and stored once', async (t) => {
      if (!needNode(t, node) || !needPeer(t, 'storescu')) return;
      const [inst] = generateStudy({ dir: path.join(tmp, kind, 'dup'), series: 1, perSeries: 1 });
      for (let i = 0; i < 2; i++) {
        const r = await storescu(node, [inst!.file]);
        assert.equal(r.code, 0, r.stderr);
      }
      const rows = (await node.instances()).filter((r) => r.sopInstanceUid === inst!.sopInstanceUid);
      assert.equal(rows.length, 1);
      const spooled = listFiles(path.join(node.dataDir, 'incoming')).filter((f) => f.includes(inst!.sopInstanceUid));
      assert.equal(spooled.length, 1, 'one file in the spool');
    });

    test('a re-send whose stored file is gone is stored again, not discarded as a duplicate', async (t) => {
      if (!needNode(t, node) || !needPeer(t, 'storescu')) return;
      const [inst] = generateStudy({ dir: path.join(tmp, kind, 'gone'), series: 1, perSeries: 1 });
      assert.equal((await storescu(node, [inst!.file])).code, 0);
      const stored = path.join(node.dataDir, 'incoming', `${inst!.sopInstanceUid}.dcm`);
      fs.rmSync(stored); // an operator removed it to have it sent again
      const r = await storescu(node, [inst!.file]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(fs.existsSync(stored), 'the re-sent copy is kept');
      await assertStored(node, [inst!]);
      const rows = (await node.instances()).filter((row) => row.sopInstanceUid === inst!.sopInstanceUid);
      assert.equal(rows.length, 1, 'one row');
    });

    test('a conflicting re-send (same SOP Instance UID, other pixels) is refused and never overwrites', async (t) => {
      if (!needNode(t, node) || !needPeer(t, 'storescu', 'dcmodify')) return;
      const [inst] = generateStudy({ dir: path.join(tmp, kind, 'conflict'), series: 1, perSeries: 1 });
      assert.equal((await storescu(node, [inst!.file])).code, 0);
      const before = datasetBytes(path.join(node.dataDir, 'incoming', `${inst!.sopInstanceUid}.dcm`));
      const changed = path.join(tmp, kind, 'conflict', 'changed.dcm');
      fs.copyFileSync(inst!.file, changed);
      const mod = await run('dcmodify', ['-nb', '-m', 'SeriesDescription=changed', changed]);
      assert.equal(mod.code, 0, mod.stderr);
      const r = await storescu(node, ['-v', changed]);
      // DCMTK names every C-range status CannotUnderstand; scannode answers 0xC003 (see docs/CONFORMANCE.md).
      assert.match(
        r.stdout + r.stderr,
        /Received Store Response \(Error: CannotUnderstand\)/,
        'refusal reported to the sender',
      );
      const after = datasetBytes(path.join(node.dataDir, 'incoming', `${inst!.sopInstanceUid}.dcm`));
      assert.ok(after.equals(before), 'stored instance unchanged');
    });

    test('start-up recovery: a row for a spool file without one; the .part of a dead process removed, of a live one kept', async (t) => {
      if (!needNode(t, node)) return;
      const [inst] = generateStudy({ dir: path.join(tmp, kind, 'recover'), series: 1, perSeries: 1 });
      await node.stop();
      const incoming = path.join(node.dataDir, 'incoming');
      fs.copyFileSync(inst!.file, path.join(incoming, `${inst!.sopInstanceUid}.dcm`));
      // A process that has exited (its transfer died with it) and one still running (a `scannode import` beside us).
      const dead = spawn('true');
      await new Promise((r) => dead.on('exit', r));
      const alive = spawn('sleep', ['30']);
      try {
        const deadPart = path.join(incoming, `1.2.3.4.99.${dead.pid}-1.part`);
        const livePart = path.join(incoming, `import-abc-${alive.pid}-1.part`);
        fs.writeFileSync(deadPart, 'half a transfer');
        fs.writeFileSync(livePart, 'a transfer in flight');
        await node.restart();
        const row = (await node.instances()).find((r) => r.sopInstanceUid === inst!.sopInstanceUid);
        assert.ok(row, 'row created at start-up');
        assert.equal(row.path, `incoming/${inst!.sopInstanceUid}.dcm`);
        assert.ok(!fs.existsSync(deadPart), '.part of a dead process removed');
        assert.ok(fs.existsSync(livePart), '.part of a live process kept');
        fs.rmSync(livePart);
      } finally {
        alive.kill();
      }
    });
  });
}

describe('transfer syntaxes of SPEC section 6', () => {
  let node: TestNode;
  const dir = path.join(tmp, 'ts');
  const cases: Array<[string, string, string[]?]> = [
    ['1.2.840.10008.1.2', 'MR_small_implicit.dcm'],
    ['1.2.840.10008.1.2.1', 'MR_small.dcm'],
    ['1.2.840.10008.1.2.2', 'MR_small_bigendian.dcm'],
    ['1.2.840.10008.1.2.1.99', 'image_dfl.dcm'],
    ['1.2.840.10008.1.2.4.50', 'SC_rgb_jpeg_dcmtk.dcm'],
    ['1.2.840.10008.1.2.4.51', 'JPGExtended.dcm'],
    ['1.2.840.10008.1.2.4.57', 'generated', ['dcmcjpeg', '+el']],
    ['1.2.840.10008.1.2.4.70', 'generated', ['dcmcjpeg', '+e1']],
    ['1.2.840.10008.1.2.4.80', 'MR_small_jpeg_ls_lossless.dcm'],
    ['1.2.840.10008.1.2.4.81', 'generated', ['dcmcjpls', '+en']],
    ['1.2.840.10008.1.2.4.90', 'MR_small_jp2klossless.dcm'],
    ['1.2.840.10008.1.2.4.91', 'JPEG2000.dcm'],
    ['1.2.840.10008.1.2.5', 'MR_small_RLE.dcm'],
  ];
  before(async () => {
    node = await startTestNode();
  });
  after(async () => node?.destroy());

  test('dcmsend sends one of each in one association; each is stored as received', async (t) => {
    if (!needPeer(t, 'dcmsend', 'dcmodify', 'dcmcjpeg', 'dcmcjpls', 'dcmdump')) return;
    if (!fs.existsSync(PYDICOM_DATA)) {
      if (process.env.CI === 'true') throw new Error('python3-pydicom test files missing');
      return t.skip('python3-pydicom test files missing');
    }
    fs.mkdirSync(dir, { recursive: true });
    // The JPEG lossless and JPEG-LS near-lossless encoders want unsigned pixels (the pydicom MR is signed).
    const [generated] = generateStudy({ dir: path.join(dir, 'src'), series: 1, perSeries: 1 });
    const files: Array<{ ts: string; file: string }> = [];
    for (const [ts, name, make] of cases) {
      const file = path.join(dir, `${ts}.dcm`);
      const src = name === 'generated' ? generated!.file : path.join(PYDICOM_DATA, 'test_files', name);
      if (make) assert.equal((await run(make[0]!, [make[1]!, src, file])).code, 0, `${make[0]} ${ts}`);
      else fs.copyFileSync(src, file);
      // The pydicom samples share SOP Instance UIDs: give each copy its own.
      assert.equal((await run('dcmodify', ['-nb', '-gin', file])).code, 0);
      files.push({ ts, file });
    }
    // DCMTK proposes explicit little endian first for any uncompressed file and converts on its side, so the implicit
    // and big endian files go with storescu told to propose exactly that; the rest with dcmsend in one association.
    const viaStorescu: Record<string, string> = { '1.2.840.10008.1.2': '-xi', '1.2.840.10008.1.2.2': '-xb' };
    for (const { ts, file } of files.filter((f) => viaStorescu[f.ts])) {
      const r = await storescu(node, [viaStorescu[ts]!, file]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    const rest = files.filter((f) => !viaStorescu[f.ts]).map((f) => f.file);
    const r = await run('dcmsend', ['-aec', 'SCANNODE', '127.0.0.1', String(node.port), ...rest]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const rows = await node.node.db.source.getRepository(node.node.db.entities.Instance).find();
    for (const { ts, file } of files) {
      const sop = /\[([0-9.]+)\]/.exec((await run('dcmdump', ['-s', '+P', '0008,0018', file])).stdout)![1]!;
      const row = rows.find((x) => x.sopInstanceUid === sop);
      assert.ok(row, `${ts} stored`);
      assert.equal(row.transferSyntaxUid, ts, `${ts} kept, not transcoded`);
      const stored = path.join(node.dataDir, row.path);
      const meta = await run('dcmdump', ['-Un', '-s', '+P', '0002,0010', stored]);
      assert.ok(meta.stdout.includes(`[${ts}]`), `${ts} in the stored meta header: ${meta.stdout}`);
      // Same content as sent: the data set dumps agree (DCMTK re-encodes group lengths on send, so bytes may not).
      const dump = async (f: string) =>
        (await run('dcmdump', ['+L', '-M', '+U8', f])).stdout
          .split('\n')
          .filter((l) => !/^\(0002,|^#|^\s*$|,0000\) UL/.test(l))
          .join('\n');
      assert.equal(await dump(stored), await dump(file), `${ts} content identical`);
    }
  });
});
