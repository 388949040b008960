/** The stored header: read through a window with flat memory whatever the object's size, PN as text, statuses. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, test } from 'node:test';
import dcmjs from 'dcmjs';
import { DimseError } from '../../src/domain/status.js';
import { TransferSyntax } from '../../src/domain/transferSyntax.js';
import { datasetOffset } from '../../src/storage/files.js';
import { parseHeader, parseHeaderFromFile, str, type Header } from '../../src/storage/header.js';
import { encode, newUid } from '../helpers/dicomgen.js';

const MiB = 1024 * 1024;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-header-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const RAW_DATA = '1.2.840.10008.5.1.4.1.1.66';

/** One Explicit VR LE element. */
function el(group: number, element: number, vr: string, value: Buffer, length = value.length): Buffer {
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(element, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(length, 8);
  else head.writeUInt16LE(length, 6);
  return Buffer.concat([head, value]);
}
const text = (s: string) => Buffer.from(s.length % 2 ? `${s} ` : s, 'latin1');

/**
 * A Raw Data object without Pixel Data whose private OB value is `bulk` bytes long, followed by the patient and the
 * study / series UIDs. The bulk value is a hole in a sparse file: the test never writes it.
 */
function sparseRawObject(name: string, bulk: number): { file: string; study: string; head: Buffer } {
  const study = newUid();
  const base = encode({ SOPClassUID: RAW_DATA, SOPInstanceUID: newUid(), Modality: 'OT' });
  const head = Buffer.concat([
    base,
    el(0x0009, 0x0010, 'LO', text('SCANNODE TEST')),
    el(0x0009, 0x1010, 'OB', Buffer.alloc(0), bulk),
  ]);
  const tail = Buffer.concat([
    el(0x0010, 0x0010, 'PN', text('Doe^John')),
    el(0x0010, 0x0020, 'LO', text('SN-BIG-1')),
    el(0x0020, 0x000d, 'UI', text(study)),
    el(0x0020, 0x000e, 'UI', text(newUid())),
  ]);
  const file = path.join(dir, name);
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, head, 0, head.length, 0);
    fs.ftruncateSync(fd, head.length + bulk);
    fs.writeSync(fd, tail, 0, tail.length, head.length + bulk);
  } finally {
    fs.closeSync(fd);
  }
  return { file, study, head: head.subarray(0, 64 * 1024) };
}

/** Peak RSS growth (the process's high-water mark) while `fn` runs, in bytes. */
function peakGrowth<T>(fn: () => T): { value: T; growth: number } {
  const before = process.resourceUsage().maxRSS * 1024;
  const value = fn();
  return { value, growth: process.resourceUsage().maxRSS * 1024 - before };
}

function status(fn: () => unknown): number | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof DimseError ? err.status : -1;
  }
}

// The big objects run first: the process's RSS high-water mark is still low then.
for (const [label, bulk] of [
  ['600 MB', 600 * 1000 * 1000],
  ['2.5 GiB', 2.5 * 1024 * MiB],
] as const) {
  test(`a ${label} object without Pixel Data is read with flat memory, the attributes after its bulk value included`, () => {
    const obj = sparseRawObject(`raw-${bulk}.dcm`, bulk);
    assert.equal(parseHeader(obj.head, false), 'need-more');
    const { value: header, growth } = peakGrowth(() => parseHeaderFromFile(obj.file, obj.head));
    assert.ok(growth < 64 * MiB, `peak RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
    assert.equal(str(header, 'StudyInstanceUID'), obj.study);
    assert.equal(str(header, 'PatientName'), 'Doe^John');
    assert.equal(header.PatientID, 'SN-BIG-1');
    assert.equal(header.SOPClassUID, RAW_DATA);
    fs.rmSync(obj.file);
  });
}

test('an object cut inside its bulk value is truncated (C001), from memory and from the file', () => {
  const obj = sparseRawObject('cut.dcm', 8 * MiB);
  fs.truncateSync(obj.file, obj.head.length + 4 * MiB);
  assert.equal(
    status(() => parseHeaderFromFile(obj.file)),
    0xc001,
  );
  assert.equal(
    status(() => parseHeader(fs.readFileSync(obj.file), true)),
    0xc001,
  );
});

test('an object cut inside a short value is truncated (C001)', () => {
  const buf = encode({ SOPClassUID: RAW_DATA, SOPInstanceUID: newUid(), StudyDescription: 'x'.repeat(60) });
  assert.equal(
    status(() => parseHeader(buf.subarray(0, buf.length - 20), true)),
    0xc001,
  );
});

test('bytes that are not DICOM are refused with C000', () => {
  assert.equal(
    status(() => parseHeader(Buffer.alloc(4096, 7), true)),
    0xc000,
  );
  const file = path.join(dir, 'text.dcm');
  fs.writeFileSync(file, 'not dicom at all, '.repeat(20));
  assert.equal(
    status(() => parseHeaderFromFile(file)),
    0xc000,
  );
});

test('PN values are stored as text: the header JSON and str() give Doe^John, never [object Object]', () => {
  const buf = encode({
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
    SOPInstanceUID: newUid(),
    PatientName: 'Doe^John',
    ReferringPhysicianName: 'Who^Doctor',
    RequestAttributesSequence: [{ ScheduledProcedureStepID: 'SPS1', RequestedProcedureID: 'RP1' }],
    OperatorsName: ['One^Op', 'Two^Op'],
  });
  const header = parseHeader(buf, true) as Header;
  assert.equal(str(header, 'PatientName'), 'Doe^John');
  assert.equal(str(header, 'ReferringPhysicianName'), 'Who^Doctor');
  const json = JSON.stringify(header);
  assert.ok(!json.includes('[object Object]') && !json.includes('Alphabetic'), json);
  assert.equal((JSON.parse(json) as Header).PatientName, 'Doe^John');
  assert.deepEqual(header.OperatorsName, ['One^Op', 'Two^Op']);
});

/** What dcmjs alone reads from the whole file (the header before this scanner), PN and its Pixel Data stub aside. */
function dcmjsHeader(buf: Buffer): Header {
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  const read = dcmjs.data.DicomMessage.readFile(ab, { untilTag: '7FE00010', includeUntilTagValue: false });
  const h = dcmjs.data.DicomMetaDictionary.naturalizeDataset(read.dict) as Header;
  delete h._vrMap;
  delete h.PatientName;
  delete h.PixelData; // dcmjs leaves `PixelData: 0` where it stopped; the scanner stops before the element
  return h;
}

test('the kept elements read as dcmjs read the whole header, sequences and every transfer syntax included', () => {
  for (const ts of [
    TransferSyntax.ExplicitVRLittleEndian,
    TransferSyntax.ImplicitVRLittleEndian,
    TransferSyntax.ExplicitVRBigEndian,
    TransferSyntax.DeflatedExplicitVRLittleEndian,
  ]) {
    const plain = encode(
      {
        SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
        SOPInstanceUID: newUid(),
        StudyInstanceUID: newUid(),
        PatientName: 'Doe^John',
        SeriesNumber: '3',
        ReferencedPerformedProcedureStepSequence: [
          { ReferencedSOPClassUID: '1.2.840.10008.3.1.2.3.3', ReferencedSOPInstanceUID: newUid() },
        ],
        RequestAttributesSequence: [
          { ScheduledProcedureStepID: 'A', ReferencedStudySequence: [{ ReferencedSOPInstanceUID: newUid() }] },
          { ScheduledProcedureStepID: 'B' },
        ],
        Rows: 4,
        Columns: 4,
        BitsAllocated: 16,
        PixelData: new Uint16Array(16).buffer,
      },
      ts,
    );
    // dcmjs writes a deflated transfer syntax's data set plain: deflate it here
    const at = datasetOffset(plain);
    const buf =
      ts === TransferSyntax.DeflatedExplicitVRLittleEndian
        ? Buffer.concat([plain.subarray(0, at), zlib.deflateRawSync(plain.subarray(at))])
        : plain;
    const header = parseHeader(buf, true) as Header;
    assert.equal(header.PatientName, 'Doe^John', ts);
    delete header.PatientName;
    assert.deepEqual(header, dcmjsHeader(buf), ts);
  }
});

test('a deflate bomb (more than 128 MiB inflated before Pixel Data) is refused with C000', async () => {
  const base = encode(
    { SOPClassUID: RAW_DATA, SOPInstanceUID: newUid() },
    TransferSyntax.DeflatedExplicitVRLittleEndian,
  );
  const at = datasetOffset(base);
  const body = base.subarray(at); // dcmjs writes the data set plain; the test deflates it
  const bulk = 200 * MiB;
  const deflater = zlib.createDeflateRaw();
  const chunks: Buffer[] = [];
  deflater.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((resolve) => deflater.on('end', resolve));
  deflater.write(
    Buffer.concat([body, el(0x0009, 0x0010, 'LO', text('BOMB')), el(0x0009, 0x1010, 'OB', Buffer.alloc(0), bulk)]),
  );
  const zeros = Buffer.alloc(MiB);
  for (let i = 0; i < bulk / MiB; i++) deflater.write(zeros);
  deflater.end(el(0x0010, 0x0010, 'PN', text('Doe^John')));
  await done;
  const buf = Buffer.concat([base.subarray(0, at), ...chunks]);
  assert.ok(buf.length < 2 * MiB);
  const file = path.join(dir, 'bomb.dcm');
  fs.writeFileSync(file, buf);
  assert.equal(
    status(() => parseHeader(buf, true)),
    0xc000,
  );
  assert.equal(
    status(() => parseHeaderFromFile(file)),
    0xc000,
  );
});

test('a header of 180 KiB read through the 64 KiB window equals the one read from memory', () => {
  const buf = encode({
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
    SOPInstanceUID: newUid(),
    PatientName: 'Doe^John',
    PatientComments: 'p'.repeat(60_001),
    ImageComments: 'i'.repeat(60_000),
    StudyComments: 's'.repeat(60_000),
    Rows: 2,
    Columns: 2,
    BitsAllocated: 16,
    PixelData: new Uint16Array(4).buffer,
  });
  const file = path.join(dir, 'long-header.dcm');
  fs.writeFileSync(file, buf);
  assert.equal(parseHeader(buf.subarray(0, 64 * 1024), false), 'need-more');
  const fromFile = parseHeaderFromFile(file, buf.subarray(0, 64 * 1024));
  assert.deepEqual(fromFile, parseHeader(buf, true));
  assert.equal(str(fromFile, 'ImageComments')?.length, 60_000);
  assert.equal(str(fromFile, 'PatientComments')?.length, 60_001);
  assert.equal(fromFile.PatientName, 'Doe^John');
});
