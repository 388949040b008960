/**
 * DIMSE command sets (PS3.7 section 6.3 and annex E): group 0000 elements in Implicit VR Little Endian.
 *
 * dcmjs-dimse reads and writes every command set through a full dcmjs dataset (naturalize / denaturalize, stream
 * classes), which cost ~0.7 ms to parse a C-STORE-RQ and ~0.5 ms to write its response on the main thread: more than
 * the rest of receiving a 0.5 MB image. dcmjs has no lighter codec, so this is the smallest one for the elements the
 * library names, under the same element names as dcmjs-dimse's `Dataset` (dcmjs keywords). It is the only command
 * set codec of the SCP (the library's is tied to its own association handling). Pure: no I/O.
 */

type Vr = 'UI' | 'US' | 'AE' | 'LO';
type Value = string | number;

const ELEMENTS: ReadonlyArray<readonly [element: number, keyword: string, vr: Vr]> = [
  [0x0002, 'AffectedSOPClassUID', 'UI'],
  [0x0003, 'RequestedSOPClassUID', 'UI'],
  [0x0100, 'CommandField', 'US'],
  [0x0110, 'MessageID', 'US'],
  [0x0120, 'MessageIDBeingRespondedTo', 'US'],
  [0x0600, 'MoveDestination', 'AE'],
  [0x0700, 'Priority', 'US'],
  [0x0800, 'CommandDataSetType', 'US'],
  [0x0900, 'Status', 'US'],
  [0x0902, 'ErrorComment', 'LO'],
  [0x0903, 'ErrorID', 'US'],
  [0x1000, 'AffectedSOPInstanceUID', 'UI'],
  [0x1001, 'RequestedSOPInstanceUID', 'UI'],
  [0x1002, 'EventTypeID', 'US'],
  [0x1008, 'ActionTypeID', 'US'],
  [0x1020, 'NumberOfRemainingSuboperations', 'US'],
  [0x1021, 'NumberOfCompletedSuboperations', 'US'],
  [0x1022, 'NumberOfFailedSuboperations', 'US'],
  [0x1023, 'NumberOfWarningSuboperations', 'US'],
  [0x1030, 'MoveOriginatorApplicationEntityTitle', 'AE'],
  [0x1031, 'MoveOriginatorMessageID', 'US'],
];
const BY_ELEMENT = new Map(ELEMENTS.map(([element, keyword, vr]) => [element, { keyword, vr }]));
const BY_KEYWORD = new Map(ELEMENTS.map(([element, keyword, vr]) => [keyword, { element, vr }]));

/**
 * The command's elements by keyword, or undefined when the bytes are not a command set (an element outside group
 * 0000 or running past the end, a known element of the wrong size). Elements this codec does not name (retired ones,
 * Offending Element...) are skipped. A flat loop over a buffer the caller has capped: no recursion, no allocation
 * beyond the values.
 */
export function decodeCommandSet(buf: Buffer): Record<string, Value> | undefined {
  const out: Record<string, Value> = {};
  let at = 0;
  while (at < buf.length) {
    if (at + 8 > buf.length) return undefined;
    const group = buf.readUInt16LE(at);
    const element = buf.readUInt16LE(at + 2);
    const length = buf.readUInt32LE(at + 4);
    const start = at + 8;
    const end = start + length;
    if (group !== 0 || end > buf.length) return undefined;
    at = end;
    const known = BY_ELEMENT.get(element);
    if (!known) continue; // group length (recomputed on write) and elements we do not use
    if (known.vr === 'US') {
      if (length !== 2) return undefined;
      out[known.keyword] = buf.readUInt16LE(start);
    } else {
      out[known.keyword] = buf
        .toString('latin1', start, end)
        .replace(/[\0 ]+$/, '')
        .replace(/^ +/, '');
    }
  }
  return out;
}

/** The command set with its group length, or undefined when an element is unknown or its value does not fit. */
export function encodeCommandSet(elements: Record<string, unknown>): Buffer | undefined {
  const parts: Array<{ element: number; value: Buffer }> = [];
  for (const [keyword, raw] of Object.entries(elements)) {
    if (raw === undefined || raw === null || keyword === 'CommandGroupLength') continue;
    const known = BY_KEYWORD.get(keyword);
    if (!known) return undefined;
    let value: Buffer;
    if (known.vr === 'US') {
      if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0 || raw > 0xffff) return undefined;
      value = Buffer.alloc(2);
      value.writeUInt16LE(raw);
    } else {
      if (typeof raw !== 'string') return undefined;
      value = Buffer.from(raw, 'latin1');
      if (value.length % 2) value = Buffer.concat([value, Buffer.from(known.vr === 'UI' ? '\0' : ' ', 'latin1')]);
    }
    parts.push({ element: known.element, value });
  }
  parts.sort((a, b) => a.element - b.element);
  const bodyLength = parts.reduce((n, p) => n + 8 + p.value.length, 0);
  const out = Buffer.alloc(12 + bodyLength);
  out.writeUInt32LE(4, 4); // (0000,0000) UL, length 4
  out.writeUInt32LE(bodyLength, 8);
  let at = 12;
  for (const p of parts) {
    out.writeUInt16LE(0, at);
    out.writeUInt16LE(p.element, at + 2);
    out.writeUInt32LE(p.value.length, at + 4);
    p.value.copy(out, at + 8);
    at += 8 + p.value.length;
  }
  return out;
}
