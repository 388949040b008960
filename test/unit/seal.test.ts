/** The spool file's seal: a file written by SpoolWriter checks out; cut short or zero-filled past a point, it does not. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { checkSealedFile, readSeal } from '../../src/storage/seal.js';
import { SpoolWriter } from '../../src/storage/spoolWriter.js';
import { datasetOffset } from '../../src/storage/files.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { datasetBytes } from '../helpers/files.js';

const MIB = 1 << 20;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-seal-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/**
 * Writes `dataset` through a SpoolWriter in uneven chunks (as the network delivers it) into a new file, or (`ready`)
 * into an empty file already open, as the spool pool hands them out.
 */
async function spool(dataset: Buffer, chunk = 7_919, ready = false): Promise<string> {
  const file = path.join(tmp, `f${++n}`);
  const fd = ready ? fs.openSync(file, 'wx+') : undefined;
  const w = new SpoolWriter(
    { path: file, fresh: !ready, ...(fd === undefined ? {} : { fd }) },
    {
      sopClassUid: '1.2.840.10008.5.1.4.1.1.4',
      sopInstanceUid: `1.2.3.${n}`,
      transferSyntaxUid: '1.2.840.10008.1.2.1',
      sourceAeTitle: 'TEST',
    },
  );
  for (let p = 0; p < dataset.length; p += chunk) w.write(dataset.subarray(p, p + chunk));
  await w.finish();
  return file;
}

/** A real image's data set followed by a few MiB of noise (more than one read when the seal is checked). */
function bigDataset(): Buffer {
  const [img] = generateStudy({ dir: path.join(tmp, 'src'), series: 1, perSeries: 1, rows: 64, columns: 64 });
  const noise = Buffer.alloc(2 * MIB + 12_345);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 31 + (i >> 9)) & 0xff;
  return Buffer.concat([datasetBytes(img!.file), noise]);
}

test('a spooled file carries its seal and checks out, with the data set byte-identical', async () => {
  const data = bigDataset();
  const file = await spool(data);
  const check = checkSealedFile(file);
  assert.ok(check.ok, check.ok ? '' : check.reason);
  assert.equal(check.seal.datasetLength, data.length);
  assert.ok(datasetBytes(file).equals(data));
  // The same bytes in other chunk sizes give the same seal.
  const other = await spool(data, 65_536 + 3);
  assert.equal(readSeal(fs.readFileSync(other))!.crc32, check.seal.crc32);
});

test('into a ready pool file, written synchronously and then by the thread pool past 16 MiB: byte-identical, sealed', async () => {
  const small = bigDataset();
  // 40 MiB: the first 16 written on the main thread, the rest handed to the thread pool while more arrives.
  const large = Buffer.concat([small, Buffer.alloc(40 * MIB - small.length, 0x5a)]);
  for (const data of [small, large]) {
    const file = await spool(data, 65_536 + 7, true);
    const check = checkSealedFile(file);
    assert.ok(check.ok, check.ok ? '' : check.reason);
    assert.equal(check.seal.datasetLength, data.length);
    assert.ok(datasetBytes(file).equals(data), `${data.length} bytes stored as received`);
  }
});

test('a file cut short is torn', async () => {
  const file = await spool(bigDataset());
  fs.truncateSync(file, fs.statSync(file).size - 1);
  const check = checkSealedFile(file);
  assert.equal(check.ok, false);
  assert.match(check.ok ? '' : check.reason, /length/);
});

test('a file zero-filled past a point (same length) is torn', async () => {
  for (const at of [MIB + 10, 2 * MIB + 5_000]) {
    const file = await spool(bigDataset());
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(size - at), 0, size - at, at);
    fs.closeSync(fd);
    const check = checkSealedFile(file);
    assert.equal(check.ok, false, `zero-filled from ${at}`);
    assert.match(check.ok ? '' : check.reason, /checksum/);
  }
});

test('a file whose meta never reached the disk (zeros where the seal goes) has no seal', async () => {
  const file = await spool(bigDataset());
  const buf = fs.readFileSync(file);
  buf.fill(0, 0, datasetOffset(buf));
  fs.writeFileSync(file, buf);
  assert.deepEqual(checkSealedFile(file), { ok: false, reason: 'no seal' });
});

test('one changed byte in the middle of the data set is caught', async () => {
  const file = await spool(bigDataset());
  const buf = fs.readFileSync(file);
  const at = datasetOffset(buf) + MIB + 777;
  buf[at] = buf[at]! ^ 0x01;
  fs.writeFileSync(file, buf);
  const check = checkSealedFile(file);
  assert.equal(check.ok, false);
});
