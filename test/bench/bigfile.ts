/** Owns the big files of the RSS bench: a 1 GiB MR instance and a sparse raw-data object without Pixel Data. */
import fs from 'node:fs';
import { encode, newUid } from '../helpers/dicomgen.js';

/**
 * Writes one big MR instance (explicit VR little endian, 16-bit, `frames` frames of rows x columns) without ever holding
 * its pixel data in memory: dcmjs would need several copies of a 1 GB buffer, so the file is made of
 *   1. the Part 10 preamble, file meta and every attribute before Pixel Data, encoded by dcmjs (`encode`, no PixelData:
 *      (7FE0,0010) sorts last, so the element can be appended after the encoded dataset), then
 *   2. a Pixel Data element header written by hand: tag 7FE0,0010, VR "OW", 2 reserved bytes, 32-bit value length, then
 *   3. the value itself, streamed from a patterned 16 MiB buffer with fs.writeSync.
 * Returns the file size in bytes.
 */
export function writeBigInstance(file: string, rows: number, columns: number, frames: number): number {
  const pixelBytes = rows * columns * frames * 2;
  if (pixelBytes >= 0xffffffff) throw new Error('pixel data too long for a 32-bit OW length');
  const head = encode({
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
    SOPInstanceUID: newUid(),
    StudyInstanceUID: newUid(),
    SeriesInstanceUID: newUid(),
    PatientID: 'SN-BENCH-BIG',
    PatientName: 'Bench^Big',
    AccessionNumber: 'BIG1',
    StudyDate: '20261123',
    StudyTime: '101500',
    Modality: 'MR',
    SeriesNumber: '1',
    InstanceNumber: '1',
    NumberOfFrames: String(frames),
    Rows: rows,
    Columns: columns,
    BitsAllocated: 16,
    BitsStored: 12,
    HighBit: 11,
    PixelRepresentation: 0,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
  });
  const elementHeader = Buffer.alloc(12);
  elementHeader.writeUInt16LE(0x7fe0, 0);
  elementHeader.writeUInt16LE(0x0010, 2);
  elementHeader.write('OW', 4, 'latin1');
  // bytes 6-7 reserved (0)
  elementHeader.writeUInt32LE(pixelBytes, 8);

  const chunk = Buffer.alloc(16 * 1024 * 1024);
  for (let i = 0; i < chunk.length; i += 2) chunk.writeUInt16LE((i >> 1) & 0xfff, i);

  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, head);
    fs.writeSync(fd, elementHeader);
    let left = pixelBytes;
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      let off = 0;
      while (off < n) off += fs.writeSync(fd, chunk, off, n - off);
      left -= n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return head.length + elementHeader.length + pixelBytes;
}

/**
 * Writes a Raw Data object without Pixel Data whose private OB value is `bulkBytes` long (up to 4 GiB - 2), then the
 * patient attributes after it, as a sparse file: the bulk value is a hole, never written here (storescu reads zeros).
 * Returns the file size in bytes.
 */
export function writeBigRawObject(file: string, bulkBytes: number): number {
  if (bulkBytes >= 0xffffffff) throw new Error('bulk value too long for a 32-bit OB length');
  const head = encode({
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.66',
    SOPInstanceUID: newUid(),
    StudyDate: '20261124',
    Modality: 'OT',
  });
  const element = (group: number, el: number, vr: string, value: Buffer, length = value.length): Buffer => {
    const long = vr === 'OB';
    const h = Buffer.alloc(long ? 12 : 8);
    h.writeUInt16LE(group, 0);
    h.writeUInt16LE(el, 2);
    h.write(vr, 4, 'latin1');
    if (long) h.writeUInt32LE(length, 8);
    else h.writeUInt16LE(length, 6);
    return Buffer.concat([h, value]);
  };
  const even = (s: string) => Buffer.from(s.length % 2 ? `${s} ` : s, 'latin1');
  const uid = (s: string) => Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1');
  const before = Buffer.concat([
    head,
    element(0x0009, 0x0010, 'LO', even('SCANNODE BENCH')),
    element(0x0009, 0x1010, 'OB', Buffer.alloc(0), bulkBytes),
  ]);
  const after = Buffer.concat([
    element(0x0010, 0x0010, 'PN', even('Bench^Raw')),
    element(0x0010, 0x0020, 'LO', even('SN-BENCH-RAW')),
    element(0x0020, 0x000d, 'UI', uid(newUid())),
    element(0x0020, 0x000e, 'UI', uid(newUid())),
  ]);
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, before, 0, before.length, 0);
    fs.ftruncateSync(fd, before.length + bulkBytes);
    fs.writeSync(fd, after, 0, after.length, before.length + bulkBytes);
  } finally {
    fs.closeSync(fd);
  }
  return before.length + bulkBytes + after.length;
}
