/**
 * What the raw-socket peer puts inside P-DATA-TF: DIMSE command sets (PS3.7 section 9 / 10, group 0000 in Implicit VR
 * Little Endian, built element by element so any one can be broken), small data sets in Explicit VR Little Endian (a
 * generated image, the 100 000-deep nested sequence), and the decoding of the command sets the node answers with.
 */
import { encode } from './dicomgen.js';
import { UID } from './parrot.js';

export const CMD = {
  C_STORE_RQ: 0x0001,
  C_STORE_RSP: 0x8001,
  C_ECHO_RQ: 0x0030,
  C_ECHO_RSP: 0x8030,
  N_CREATE_RQ: 0x0140,
  N_CREATE_RSP: 0x8140,
};
export const NO_DATA_SET = 0x0101;
export const DATA_SET = 0x0000;

/** One command element: element number in group 0000 and its value (number: US, string: UI/AE, Buffer: raw). */
export type CommandElement = [element: number, value: number | string | Buffer];

export interface CommandKnobs {
  /** Leave out (0000,0000). */
  noGroupLength?: boolean;
  /** Added to the length field of the last element (> 0: it overruns the command set). */
  lastLengthDelta?: number;
  /** Added to the group length value. */
  groupLengthDelta?: number;
}

function value(v: number | string | Buffer): Buffer {
  if (typeof v === 'number') {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v & 0xffff);
    return b;
  }
  if (Buffer.isBuffer(v)) return v;
  const s = Buffer.from(v, 'latin1');
  return s.length % 2 ? Buffer.concat([s, Buffer.from([0])]) : s;
}

/** A command set, elements sorted as given (callers that test ordering pass them unsorted). */
export function commandSet(elements: CommandElement[], k: CommandKnobs = {}): Buffer {
  const parts = elements.map(([el, v], i) => {
    const val = value(v);
    const head = Buffer.alloc(8);
    head.writeUInt16LE(0, 0);
    head.writeUInt16LE(el, 2);
    const delta = i === elements.length - 1 ? (k.lastLengthDelta ?? 0) : 0;
    head.writeUInt32LE(val.length + delta, 4);
    return Buffer.concat([head, val]);
  });
  const body = Buffer.concat(parts);
  if (k.noGroupLength) return body;
  const gl = Buffer.alloc(12);
  gl.writeUInt32LE(4, 4);
  gl.writeUInt32LE(body.length + (k.groupLengthDelta ?? 0), 8);
  return Buffer.concat([gl, body]);
}

export function echoRq(messageId = 1, k: CommandKnobs = {}): Buffer {
  return commandSet(
    [
      [0x0002, UID.verification],
      [0x0100, CMD.C_ECHO_RQ],
      [0x0110, messageId],
      [0x0800, NO_DATA_SET],
    ],
    k,
  );
}

export function storeRq(
  o: { sopClass?: string; sopInstance: string; messageId?: number; dataSetType?: number },
  k: CommandKnobs = {},
): Buffer {
  return commandSet(
    [
      [0x0002, o.sopClass ?? UID.mrStorage],
      [0x0100, CMD.C_STORE_RQ],
      [0x0110, o.messageId ?? 1],
      [0x0700, 0],
      [0x0800, o.dataSetType ?? DATA_SET],
      [0x1000, o.sopInstance],
    ],
    k,
  );
}

export function nCreateRq(o: { sopInstance?: string; messageId?: number }): Buffer {
  return commandSet([
    [0x0002, UID.mpps],
    [0x0100, CMD.N_CREATE_RQ],
    [0x0110, o.messageId ?? 1],
    [0x0800, DATA_SET],
    ...(o.sopInstance ? [[0x1000, o.sopInstance] as CommandElement] : []),
  ]);
}

export interface DecodedCommand {
  commandField?: number;
  status?: number;
  respondingTo?: number;
  affectedSopInstance?: string;
  errorComment?: string;
}

/** The few elements of a response the tests read; undefined when the bytes are not a group 0000 command set. */
export function decodeCommand(buf: Buffer): DecodedCommand | undefined {
  const out: DecodedCommand = {};
  let at = 0;
  while (at < buf.length) {
    if (at + 8 > buf.length || buf.readUInt16LE(at) !== 0) return undefined;
    const el = buf.readUInt16LE(at + 2);
    const len = buf.readUInt32LE(at + 4);
    const v = buf.subarray(at + 8, at + 8 + len);
    if (v.length !== len) return undefined;
    const text = () => v.toString('latin1').replace(/[\0 ]+$/, '');
    if (el === 0x0100 && len === 2) out.commandField = v.readUInt16LE(0);
    if (el === 0x0900 && len === 2) out.status = v.readUInt16LE(0);
    if (el === 0x0120 && len === 2) out.respondingTo = v.readUInt16LE(0);
    if (el === 0x1000) out.affectedSopInstance = text();
    if (el === 0x0902) out.errorComment = text();
    at += 8 + len;
  }
  return out;
}

// -- data sets (Explicit VR Little Endian, no meta) --------------------------------------------------------------

/** The data set of a Part 10 buffer: after the preamble, "DICM" and the group 0002 elements. */
export function stripMeta(part10: Buffer): Buffer {
  if (part10.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a Part 10 buffer');
  const groupLength = part10.readUInt32LE(140);
  return part10.subarray(144 + groupLength);
}

/**
 * A UID of exactly `length` characters under 2.25, a function of `n` only: every case's exchange has the same length
 * (mutation offsets never move) and the same bytes on replay. Unique within one node's run, which is all that is needed.
 */
export function fixedUid(n: number, length = 40): string {
  return `2.25.1${String(n).padStart(length - 6, '0')}`;
}

export interface SmallImage {
  dataset: Buffer;
  sopInstanceUid: string;
  /** Offset of the Pixel Data value in `dataset` and its length. */
  pixelStart: number;
  pixelLength: number;
}

/** A 32x32 16-bit MR image (2 KiB of pixels), Explicit VR Little Endian, with the UIDs given. */
export function smallImage(sopInstanceUid: string, rows = 32, columns = 32): SmallImage {
  const pixels = new Uint16Array(rows * columns);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7) & 0xfff;
  const ds = stripMeta(
    encode({
      SOPClassUID: UID.mrStorage,
      SOPInstanceUID: sopInstanceUid,
      StudyInstanceUID: `${sopInstanceUid}.1`,
      SeriesInstanceUID: `${sopInstanceUid}.2`,
      PatientID: 'EDGE-1',
      PatientName: 'Edge^Test',
      Modality: 'MR',
      StudyDate: '20261123',
      SeriesNumber: '1',
      InstanceNumber: '1',
      Rows: rows,
      Columns: columns,
      BitsAllocated: 16,
      BitsStored: 12,
      HighBit: 11,
      PixelRepresentation: 0,
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      PixelData: [pixels.buffer],
    }),
  );
  // (7FE0,0010) OW: tag, 'OW', 2 reserved, 4-byte length.
  const tag = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57]);
  const at = ds.lastIndexOf(tag);
  if (at < 0) throw new Error('no Pixel Data in the generated image');
  return { dataset: ds, sopInstanceUid, pixelStart: at + 12, pixelLength: ds.readUInt32LE(at + 8) };
}

function element(group: number, el: number, vr: string, val: Buffer): Buffer {
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT', 'UC', 'UR', 'OF', 'OD', 'OL'].includes(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(el, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(val.length, 8);
  else head.writeUInt16LE(val.length, 6);
  return Buffer.concat([head, val]);
}

function text(s: string, pad = ' '): Buffer {
  return Buffer.from(s.length % 2 ? s + pad : s, 'latin1');
}

/**
 * `depth` undefined-length sequences nested in one another (PS3.5 7.5), each level 36 bytes: tag, SQ, undefined length,
 * an item of undefined length; then every item and sequence delimiter. 100 000 levels are 3.6 MB.
 */
export function deepSequence(group: number, el: number, depth: number): Buffer {
  const open = Buffer.alloc(20);
  open.writeUInt16LE(group, 0);
  open.writeUInt16LE(el, 2);
  open.write('SQ', 4, 'latin1');
  open.writeUInt32LE(0xffffffff, 8);
  open.writeUInt16LE(0xfffe, 12);
  open.writeUInt16LE(0xe000, 14);
  open.writeUInt32LE(0xffffffff, 16);
  const close = Buffer.alloc(16);
  close.writeUInt16LE(0xfffe, 0);
  close.writeUInt16LE(0xe00d, 2);
  close.writeUInt16LE(0xfffe, 8);
  close.writeUInt16LE(0xe0dd, 10);
  const out = Buffer.alloc(depth * 36);
  for (let i = 0; i < depth; i++) open.copy(out, i * 20);
  for (let i = 0; i < depth; i++) close.copy(out, depth * 20 + i * 16);
  return out;
}

/** A storage data set whose Content Sequence (0040,A730) nests `depth` levels, after valid UIDs. */
export function deepStoreDataset(sopInstanceUid: string, depth: number): Buffer {
  return Buffer.concat([
    element(0x0008, 0x0016, 'UI', text(UID.mrStorage, '\0')),
    element(0x0008, 0x0018, 'UI', text(sopInstanceUid, '\0')),
    element(0x0008, 0x0060, 'CS', text('MR')),
    element(0x0010, 0x0020, 'LO', text('EDGE-DEEP')),
    element(0x0020, 0x000d, 'UI', text(`${sopInstanceUid}.1`, '\0')),
    element(0x0020, 0x000e, 'UI', text(`${sopInstanceUid}.2`, '\0')),
    deepSequence(0x0040, 0xa730, depth),
  ]);
}

/** An MPPS N-CREATE data set (status IN PROGRESS) whose Scheduled Step Attributes Sequence nests `depth` levels. */
export function deepMppsDataset(depth: number): Buffer {
  return Buffer.concat([
    element(0x0008, 0x0060, 'CS', text('MR')),
    element(0x0010, 0x0020, 'LO', text('EDGE-DEEP')),
    element(0x0040, 0x0252, 'CS', text('IN PROGRESS')),
    deepSequence(0x0040, 0x0270, depth),
  ]);
}
