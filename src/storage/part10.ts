/**
 * The DICOM Part 10 preamble and File Meta Information group (PS3.10 7.1): written in front of the data set bytes
 * exactly as they came off the wire, and read back (the one reader of the group: data set offset, transfer syntax,
 * seal). dcmjs can only write a meta header together with a whole data set it has parsed (and re-encoded), which is
 * what storing "as received" must avoid, so this is the smallest codec that does it.
 */
import { LONG_VRS } from '../domain/dicomWalk.js';

export const IMPLEMENTATION_CLASS_UID = '1.2.826.0.1.3680043.10.1561.1';
export const IMPLEMENTATION_VERSION = 'SCANNODE_010';

export interface MetaInfo {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  sourceAeTitle?: string;
}

/** The meta carries a seal (see seal.ts): its last element, (0002,0102), reserved as zeros until `writeSeal`. */
export interface SealSlot {
  creatorUid: string;
  bytes: number;
}

function element(group: number, elem: number, vr: string, value: Buffer): Buffer {
  const long = LONG_VRS.has(vr);
  const header = Buffer.alloc(long ? 12 : 8);
  header.writeUInt16LE(group, 0);
  header.writeUInt16LE(elem, 2);
  header.write(vr, 4, 'latin1');
  if (long) header.writeUInt32LE(value.length, 8);
  else header.writeUInt16LE(value.length, 6);
  return Buffer.concat([header, value]);
}

/** UI values are padded with NUL to even length, other strings with a space. */
function str(value: string, pad: '\0' | ' '): Buffer {
  return Buffer.from(value.length % 2 ? value + pad : value, 'latin1');
}

export function buildPart10Header(meta: MetaInfo, seal?: SealSlot): Buffer {
  const elements = [
    element(0x0002, 0x0001, 'OB', Buffer.from([0x00, 0x01])),
    element(0x0002, 0x0002, 'UI', str(meta.sopClassUid, '\0')),
    element(0x0002, 0x0003, 'UI', str(meta.sopInstanceUid, '\0')),
    element(0x0002, 0x0010, 'UI', str(meta.transferSyntaxUid, '\0')),
    element(0x0002, 0x0012, 'UI', str(IMPLEMENTATION_CLASS_UID, '\0')),
    element(0x0002, 0x0013, 'SH', str(IMPLEMENTATION_VERSION, ' ')),
  ];
  if (meta.sourceAeTitle) elements.push(element(0x0002, 0x0016, 'AE', str(meta.sourceAeTitle, ' ')));
  if (seal) {
    elements.push(element(0x0002, 0x0100, 'UI', str(seal.creatorUid, '\0')));
    elements.push(element(0x0002, 0x0102, 'OB', Buffer.alloc(seal.bytes)));
  }
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length, 0);
  return Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM', 'latin1'),
    element(0x0002, 0x0000, 'UL', groupLength),
    body,
  ]);
}

/** Fills the seal slot of a header built with one (its last `value.length` bytes). */
export function writeSeal(header: Buffer, value: Buffer): void {
  value.copy(header, header.length - value.length);
}

const META_START = 132;

export interface MetaElement {
  element: number;
  vr: string;
  value: Buffer;
}

/**
 * The File Meta Information elements of Part 10 bytes (group 0002, always Explicit VR Little Endian) and the offset
 * where the data set starts. An element cut by the end of `buf` ends the list there. Undefined without 'DICM'.
 */
export function readMeta(buf: Buffer): { elements: MetaElement[]; end: number } | undefined {
  if (buf.length < META_START || buf.toString('latin1', 128, META_START) !== 'DICM') return undefined;
  const elements: MetaElement[] = [];
  let p = META_START;
  while (p + 8 <= buf.length && buf.readUInt16LE(p) === 0x0002) {
    const vr = buf.toString('latin1', p + 4, p + 6);
    const long = LONG_VRS.has(vr);
    if (long && p + 12 > buf.length) break;
    const start = p + (long ? 12 : 8);
    const end = start + (long ? buf.readUInt32LE(p + 8) : buf.readUInt16LE(p + 6));
    if (end > buf.length) break;
    elements.push({ element: buf.readUInt16LE(p + 2), vr, value: buf.subarray(start, end) });
    p = end;
  }
  return { elements, end: p };
}

/** A string value of the meta (UI, AE, SH) without its padding. */
export function metaString(meta: { elements: MetaElement[] } | undefined, element: number): string | undefined {
  const e = meta?.elements.find((x) => x.element === element);
  const v = e?.value.toString('latin1').replace(/[\0 ]+$/, '');
  return v ? v : undefined;
}
