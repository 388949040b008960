/**
 * Walks the data elements of an encoded DICOM data set (PS3.5 section 7) without recursion: nested sequences and items
 * live on an explicit stack whose depth is capped, so bytes from a peer can neither exhaust the call stack nor make
 * the walk cost more than one pass over the buffer. Explicit VR LE, Implicit VR LE and Explicit VR BE; defined and
 * undefined lengths; item and sequence delimiters; encapsulated pixel data (fragments, not nested data sets).
 * The visitor sees every element header in order and may stop the walk or skip a sequence's contents. The bytes come
 * from a ByteSource (a Buffer, or a window over a file kept in src/storage): values the visitor does not want are
 * stepped over without being read. Pure: no I/O.
 */
import dcmjs from 'dcmjs';

export const UNDEFINED_LENGTH = 0xffffffff;
export const ITEM = 0xfffee000;
export const ITEM_DELIMITATION = 0xfffee00d;
export const SEQUENCE_DELIMITATION = 0xfffee0dd;
export const PIXEL_DATA = 0x7fe00010;

/** VRs whose explicit-VR header has two reserved bytes and a 32-bit length (PS3.5 7.1.2). */
export const LONG_VRS: ReadonlySet<string> = new Set([
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'SQ',
  'SV',
  'UC',
  'UN',
  'UR',
  'UT',
  'UV',
]);

export interface WalkedElement {
  /** (group << 16 | element), unsigned. */
  tag: number;
  /** The VR as encoded (explicit VR) or from the data dictionary (implicit VR; 'UN' when the tag is unknown). */
  vr: string;
  /** Value length, or UNDEFINED_LENGTH. */
  length: number;
  /** Offset of the element's first header byte in the buffer. */
  offset: number;
  /** Offset of the value (after the header). */
  valueOffset: number;
  /** 0 for the data set's own elements, 1 inside an item of a top-level sequence, and so on. */
  depth: number;
}

/** What the visitor wants next: go on (undefined), `skip` a sequence's contents (still checked, not visited), `stop`. */
export type WalkAction = void | 'skip' | 'stop';

export interface WalkOptions {
  explicitVr: boolean;
  littleEndian: boolean;
  /** Where the data set starts in the buffer (default 0). */
  offset?: number;
  /** Deepest sequence nesting accepted; deeper data sets throw DicomWalkError('too-deep'). */
  maxDepth: number;
  /**
   * The buffer holds the whole data set. When false, running out of bytes ends the walk with `need-more` instead of
   * `truncated`, so a caller reading a prefix of a file can read more and walk again.
   */
  complete: boolean;
}

export type WalkEnd =
  /** Every element was walked (the buffer ended at a top-level element boundary). */
  | { status: 'complete'; offset: number }
  /** The visitor said stop at the element starting at `offset`. */
  | { status: 'stopped'; offset: number }
  /** `complete: false` and the bytes ran out; walking again from the start with more bytes goes further. */
  | { status: 'need-more'; offset: number };

export type DicomWalkErrorKind = 'too-deep' | 'malformed' | 'truncated';

export class DicomWalkError extends Error {
  constructor(
    readonly kind: DicomWalkErrorKind,
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
    this.name = 'DicomWalkError';
  }
}

/** Random access to the encoded bytes. The walk asks only for element headers (at most 12 bytes at a time). */
export interface ByteSource {
  /** How many bytes there are (the buffer's or the file's size). */
  readonly length: number;
  /** `n` bytes from `at` (at + n <= length); the view may be reused by the next call. */
  view(at: number, n: number): Buffer;
}

/** Items opening and closing, sequences closing: what a caller re-encoding the walked elements needs. */
export interface StructureEvent {
  kind: 'item' | 'item-end' | 'sequence-end';
  /** The depth of the elements inside the item / of the closed sequence's contents. */
  depth: number;
}

export function bufferSource(buf: Buffer): ByteSource {
  return { length: buf.length, view: (at, n) => buf.subarray(at, at + n) };
}

interface Frame {
  kind: 'sequence' | 'item';
  /** Absolute end offset for a defined length, undefined for an undefined length (ends at its delimiter). */
  end: number | undefined;
  /** The depth of the elements inside an item of this sequence / inside this item. */
  depth: number;
  /** Contents walked but not visited (the visitor said skip, or an enclosing frame is silent). */
  silent: boolean;
  /** The encoding of the contents: explicit VR, except inside a UN of undefined length (PS3.5 6.2.2). */
  explicitVr: boolean;
}

/** Walks `input` from `opts.offset`, calling `visit` for each element header and `structure` for items / ends. */
export function walkDataset(
  input: Buffer | ByteSource,
  opts: WalkOptions,
  visit: (el: WalkedElement) => WalkAction = () => undefined,
  structure: (ev: StructureEvent) => void = () => undefined,
): WalkEnd {
  const src = Buffer.isBuffer(input) ? bufferSource(input) : input;
  const size = src.length;
  const le = opts.littleEndian;
  let head: Buffer = Buffer.alloc(0);
  /** Loads the (up to 12) header bytes at `at`; the readers below take offsets relative to the element. */
  const load = (at: number) => {
    head = src.view(at, Math.min(12, size - at));
  };
  const u16 = (rel: number) => (le ? head.readUInt16LE(rel) : head.readUInt16BE(rel));
  const u32 = (rel: number) => (le ? head.readUInt32LE(rel) : head.readUInt32BE(rel));
  const tag0 = () => ((u16(0) << 16) | u16(2)) >>> 0;
  const stack: Frame[] = [];
  let pos = opts.offset ?? 0;

  const ranOut = (at: number): WalkEnd => {
    if (!opts.complete) return { status: 'need-more', offset: at };
    throw new DicomWalkError('truncated', 'the data set ends inside an element', at);
  };
  const push = (frame: Frame, at: number) => {
    if (frame.depth > opts.maxDepth) {
      throw new DicomWalkError('too-deep', `sequences nested deeper than ${opts.maxDepth}`, at);
    }
    stack.push(frame);
    if (frame.kind === 'item' && !frame.silent) structure({ kind: 'item', depth: frame.depth });
  };
  const pop = () => {
    const frame = stack.pop();
    if (frame && !frame.silent) {
      structure({ kind: frame.kind === 'item' ? 'item-end' : 'sequence-end', depth: frame.depth });
    }
  };

  for (;;) {
    // Close the defined-length items and sequences that end here.
    let top = stack[stack.length - 1];
    while (top && top.end !== undefined && pos >= top.end) {
      if (pos > top.end) throw new DicomWalkError('malformed', `an element overruns its ${top.kind}`, pos);
      pop();
      top = stack[stack.length - 1];
    }
    if (pos >= size) {
      if (stack.length > 0) return ranOut(pos);
      return opts.complete ? { status: 'complete', offset: pos } : { status: 'need-more', offset: pos };
    }
    if (pos + 8 > size) return ranOut(pos);
    load(pos);
    const tag = tag0();

    if (top?.kind === 'sequence') {
      // Inside a sequence only items and the sequence delimiter may appear; their headers carry no VR.
      const length = u32(4);
      if (tag === ITEM) {
        const end = length === UNDEFINED_LENGTH ? undefined : pos + 8 + length;
        if (end !== undefined && top.end !== undefined && end > top.end) {
          throw new DicomWalkError('malformed', 'an item overruns its sequence', pos);
        }
        push({ kind: 'item', end, depth: top.depth, silent: top.silent, explicitVr: top.explicitVr }, pos);
        pos += 8;
        continue;
      }
      if (tag === SEQUENCE_DELIMITATION && top.end === undefined) {
        pop();
        pos += 8;
        continue;
      }
      throw new DicomWalkError('malformed', `tag ${tagText(tag)} inside a sequence where an item belongs`, pos);
    }

    if (tag === ITEM_DELIMITATION) {
      if (top?.kind !== 'item' || top.end !== undefined) {
        throw new DicomWalkError('malformed', 'an item delimiter outside an undefined-length item', pos);
      }
      pop();
      pos += 8;
      continue;
    }
    if (tag === ITEM || tag === SEQUENCE_DELIMITATION) {
      throw new DicomWalkError('malformed', `${tagText(tag)} outside a sequence`, pos);
    }

    // A data element.
    const explicitVr = top?.explicitVr ?? opts.explicitVr;
    let vr: string;
    let length: number;
    let valueOffset: number;
    if (explicitVr) {
      vr = head.toString('latin1', 4, 6);
      if (!/^[A-Z]{2}$/.test(vr)) throw new DicomWalkError('malformed', `not a VR: ${JSON.stringify(vr)}`, pos);
      if (LONG_VRS.has(vr)) {
        if (pos + 12 > size) return ranOut(pos);
        length = u32(8);
        valueOffset = pos + 12;
      } else {
        length = u16(6);
        valueOffset = pos + 8;
      }
    } else {
      vr = dictionaryVr(tag) ?? 'UN';
      length = u32(4);
      valueOffset = pos + 8;
    }
    const depth = top?.depth ?? 0;
    const silent = top?.silent ?? false;
    const el: WalkedElement = { tag, vr, length, offset: pos, valueOffset, depth };
    const action = silent ? undefined : visit(el);
    if (action === 'stop') return { status: 'stopped', offset: pos };

    const undefinedLength = length === UNDEFINED_LENGTH;
    // PS3.5 6.2.2: UN of undefined length is an implicit-VR sequence; implicit VR knows SQ only from the dictionary.
    const unSequence = undefinedLength && vr === 'UN' && tag !== PIXEL_DATA;
    if (vr === 'SQ' || unSequence) {
      const end = undefinedLength ? undefined : valueOffset + length;
      if (end !== undefined && top?.end !== undefined && end > top.end) {
        throw new DicomWalkError('malformed', 'a sequence overruns its item', pos);
      }
      const frame: Frame = {
        kind: 'sequence',
        end,
        depth: depth + 1,
        silent: silent || action === 'skip',
        explicitVr: explicitVr && !unSequence,
      };
      push(frame, pos);
      pos = valueOffset;
      continue;
    }
    if (undefinedLength) {
      if (tag !== PIXEL_DATA && vr !== 'OB' && vr !== 'OW') {
        throw new DicomWalkError('malformed', `undefined length on ${tagText(tag)} ${vr}`, pos);
      }
      const after = skipFragments(src, valueOffset, le);
      if (after === undefined) return ranOut(pos);
      pos = after;
      continue;
    }
    const next = valueOffset + length;
    if (top?.end !== undefined && next > top.end) {
      throw new DicomWalkError('malformed', `${tagText(tag)} overruns its item`, pos);
    }
    if (next > size) return ranOut(pos);
    pos = next;
  }
}

/** Encapsulated pixel data: items of bytes up to the sequence delimiter. Returns the offset after it. */
function skipFragments(src: ByteSource, at: number, le: boolean): number | undefined {
  let pos = at;
  for (;;) {
    if (pos + 8 > src.length) return undefined;
    const h = src.view(pos, 8);
    const tag = le ? ((h.readUInt16LE(0) << 16) | h.readUInt16LE(2)) >>> 0 : h.readUInt32BE(0);
    const length = le ? h.readUInt32LE(4) : h.readUInt32BE(4);
    if (tag === SEQUENCE_DELIMITATION) return pos + 8;
    if (tag !== ITEM || length === UNDEFINED_LENGTH) {
      throw new DicomWalkError('malformed', `${tagText(tag)} among encapsulated fragments`, pos);
    }
    pos += 8 + length;
  }
}

/** The value bytes of a walked element with a defined length (a view, not a copy). */
export function elementValue(buf: Buffer, el: WalkedElement): Buffer {
  if (el.length === UNDEFINED_LENGTH) throw new Error(`${tagText(el.tag)} has an undefined length`);
  return buf.subarray(el.valueOffset, el.valueOffset + el.length);
}

export function tagText(tag: number): string {
  const hex = tag.toString(16).toUpperCase().padStart(8, '0');
  return `(${hex.slice(0, 4)},${hex.slice(4)})`;
}

const dictionary = dcmjs.data.DicomMetaDictionary as unknown as { dictionary: Record<string, { vr?: string }> };

/** The data dictionary's VR of a tag ('SQ', 'UI'...), for implicit VR; undefined for unknown and private tags. */
export function dictionaryVr(tag: number): string | undefined {
  if (tag >>> 16 === 0xfffe) return undefined;
  const vr = dictionary.dictionary[tagText(tag)]?.vr;
  // dcmjs marks pixel data 'ox' (OB or OW) and a few others 'xs' / 'ox': ambiguous VRs are not sequences.
  return vr && /^[A-Z]{2}$/.test(vr) ? vr : undefined;
}
