/**
 * Walks the data elements of an encoded DICOM data set (PS3.5 section 7) without recursion: nested sequences and items
 * live on an explicit stack whose depth is capped, so bytes from a peer can neither exhaust the call stack nor make
 * the walk cost more than one pass over the buffer. Explicit VR LE, Implicit VR LE and Explicit VR BE; defined and
 * undefined lengths; item and sequence delimiters; encapsulated pixel data (fragments, not nested data sets).
 * The visitor sees every element header in order and may stop the walk or skip a sequence's contents. Pure: no I/O.
 */
import dcmjs from 'dcmjs';

export const UNDEFINED_LENGTH = 0xffffffff;
export const ITEM = 0xfffee000;
export const ITEM_DELIMITATION = 0xfffee00d;
export const SEQUENCE_DELIMITATION = 0xfffee0dd;
export const PIXEL_DATA = 0x7fe00010;

/** VRs whose explicit-VR header has two reserved bytes and a 32-bit length (PS3.5 7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

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

interface Frame {
  kind: 'sequence' | 'item';
  /** Absolute end offset for a defined length, undefined for an undefined length (ends at its delimiter). */
  end: number | undefined;
  /** The depth of the elements inside an item of this sequence / inside this item. */
  depth: number;
  /** Contents walked but not visited (the visitor said skip, or an enclosing frame is silent). */
  silent: boolean;
}

/** Walks `buf` from `opts.offset`, calling `visit` for each element header. */
export function walkDataset(
  buf: Buffer,
  opts: WalkOptions,
  visit: (el: WalkedElement) => WalkAction = () => undefined,
): WalkEnd {
  const le = opts.littleEndian;
  const u16 = (at: number) => (le ? buf.readUInt16LE(at) : buf.readUInt16BE(at));
  const u32 = (at: number) => (le ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
  const tagAt = (at: number) => ((u16(at) << 16) | u16(at + 2)) >>> 0;
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
  };

  for (;;) {
    // Close the defined-length items and sequences that end here.
    let top = stack[stack.length - 1];
    while (top && top.end !== undefined && pos >= top.end) {
      if (pos > top.end) throw new DicomWalkError('malformed', `an element overruns its ${top.kind}`, pos);
      stack.pop();
      top = stack[stack.length - 1];
    }
    if (pos >= buf.length) {
      if (stack.length > 0) return ranOut(pos);
      return opts.complete ? { status: 'complete', offset: pos } : { status: 'need-more', offset: pos };
    }
    if (pos + 8 > buf.length) return ranOut(pos);
    const tag = tagAt(pos);

    if (top?.kind === 'sequence') {
      // Inside a sequence only items and the sequence delimiter may appear; their headers carry no VR.
      const length = u32(pos + 4);
      if (tag === ITEM) {
        const end = length === UNDEFINED_LENGTH ? undefined : pos + 8 + length;
        if (end !== undefined && top.end !== undefined && end > top.end) {
          throw new DicomWalkError('malformed', 'an item overruns its sequence', pos);
        }
        push({ kind: 'item', end, depth: top.depth, silent: top.silent }, pos);
        pos += 8;
        continue;
      }
      if (tag === SEQUENCE_DELIMITATION && top.end === undefined) {
        stack.pop();
        pos += 8;
        continue;
      }
      throw new DicomWalkError('malformed', `tag ${tagText(tag)} inside a sequence where an item belongs`, pos);
    }

    if (tag === ITEM_DELIMITATION) {
      if (top?.kind !== 'item' || top.end !== undefined) {
        throw new DicomWalkError('malformed', 'an item delimiter outside an undefined-length item', pos);
      }
      stack.pop();
      pos += 8;
      continue;
    }
    if (tag === ITEM || tag === SEQUENCE_DELIMITATION) {
      throw new DicomWalkError('malformed', `${tagText(tag)} outside a sequence`, pos);
    }

    // A data element.
    let vr: string;
    let length: number;
    let valueOffset: number;
    if (opts.explicitVr) {
      vr = buf.toString('latin1', pos + 4, pos + 6);
      if (!/^[A-Z]{2}$/.test(vr)) throw new DicomWalkError('malformed', `not a VR: ${JSON.stringify(vr)}`, pos);
      if (LONG_VRS.has(vr)) {
        if (pos + 12 > buf.length) return ranOut(pos);
        length = u32(pos + 8);
        valueOffset = pos + 12;
      } else {
        length = u16(pos + 6);
        valueOffset = pos + 8;
      }
    } else {
      vr = dictionaryVr(tag) ?? 'UN';
      length = u32(pos + 4);
      valueOffset = pos + 8;
    }
    const depth = top?.depth ?? 0;
    const silent = top?.silent ?? false;
    const el: WalkedElement = { tag, vr, length, offset: pos, valueOffset, depth };
    const action = silent ? undefined : visit(el);
    if (action === 'stop') return { status: 'stopped', offset: pos };

    const undefinedLength = length === UNDEFINED_LENGTH;
    // PS3.5 6.2.2: UN of undefined length is an implicit-VR sequence; implicit VR knows SQ only from the dictionary.
    const isSequence = vr === 'SQ' || (undefinedLength && vr === 'UN' && tag !== PIXEL_DATA);
    if (isSequence) {
      const end = undefinedLength ? undefined : valueOffset + length;
      if (end !== undefined && top?.end !== undefined && end > top.end) {
        throw new DicomWalkError('malformed', 'a sequence overruns its item', pos);
      }
      push({ kind: 'sequence', end, depth: depth + 1, silent: silent || action === 'skip' }, pos);
      pos = valueOffset;
      continue;
    }
    if (undefinedLength) {
      if (tag !== PIXEL_DATA && vr !== 'OB' && vr !== 'OW') {
        throw new DicomWalkError('malformed', `undefined length on ${tagText(tag)} ${vr}`, pos);
      }
      const after = skipFragments(buf, valueOffset, tagAt, u32);
      if (after === undefined) return ranOut(pos);
      pos = after;
      continue;
    }
    const next = valueOffset + length;
    if (top?.end !== undefined && next > top.end) {
      throw new DicomWalkError('malformed', `${tagText(tag)} overruns its item`, pos);
    }
    if (next > buf.length) return ranOut(pos);
    pos = next;
  }
}

/** Encapsulated pixel data: items of bytes up to the sequence delimiter. Returns the offset after it. */
function skipFragments(
  buf: Buffer,
  at: number,
  tagAt: (at: number) => number,
  u32: (at: number) => number,
): number | undefined {
  let pos = at;
  for (;;) {
    if (pos + 8 > buf.length) return undefined;
    const tag = tagAt(pos);
    const length = u32(pos + 4);
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
