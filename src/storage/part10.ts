/**
 * The DICOM Part 10 preamble and File Meta Information group (PS3.10 7.1), written in front of the data set bytes
 * exactly as they came off the wire. dcmjs can only write a meta header together with a whole data set it has parsed
 * (and re-encoded), which is what storing "as received" must avoid, so this is the smallest encoder that does it.
 */

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
  const long = vr === 'OB' || vr === 'UN' || vr === 'SQ' || vr === 'UT';
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
