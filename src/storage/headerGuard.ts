/**
 * Owns the check that runs before dcmjs parses a stored Part 10 header: the sequence nesting of the data set, walked
 * without recursion (domain/dicomWalk), so that a peer's data set nested 100 000 deep is refused with C000 instead of
 * wedging or overflowing dcmjs's recursive reader (which has no depth limit of its own).
 */
import zlib from 'node:zlib';
import { DicomWalkError, PIXEL_DATA, walkDataset } from '../domain/dicomWalk.js';
import { DicomStatus, DimseError } from '../domain/status.js';
import { TransferSyntax } from '../domain/transferSyntax.js';

/** Deeper than any real data set (RT plans and structured reports stay well under 20). */
export const MAX_HEADER_DEPTH = 64;
/** A deflated data set is inflated for the check up to this size; the header of any real object is far smaller. */
const MAX_INFLATED = 256 * 1024 * 1024;
const META_START = 132;
const TRANSFER_SYNTAX_ELEMENT = 0x0010;
const LONG_META_VRS = new Set(['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR']);

/**
 * Throws DimseError(C000) when the data set of the Part 10 bytes in `buf` nests sequences deeper than
 * MAX_HEADER_DEPTH before Pixel Data. Anything else the walk finds (odd lengths, a cut buffer) is left to the parser,
 * whose messages and statuses the callers already map; this check only adds the bound dcmjs lacks.
 */
export function assertHeaderDepth(buf: Buffer, complete: boolean): void {
  if (buf.length < META_START || buf.toString('latin1', 128, 132) !== 'DICM') return;
  const meta = readMeta(buf);
  if (!meta) return;
  let body = buf;
  let offset = meta.end;
  if (meta.transferSyntax === TransferSyntax.DeflatedExplicitVRLittleEndian) {
    try {
      body = zlib.inflateRawSync(buf.subarray(meta.end), {
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
        maxOutputLength: MAX_INFLATED,
      });
    } catch {
      return; // the parser reports a broken or oversized deflate stream
    }
    offset = 0;
  }
  try {
    walkDataset(
      body,
      {
        explicitVr: meta.transferSyntax !== TransferSyntax.ImplicitVRLittleEndian,
        littleEndian: meta.transferSyntax !== TransferSyntax.ExplicitVRBigEndian,
        offset,
        maxDepth: MAX_HEADER_DEPTH,
        complete,
      },
      (el) => (el.tag === PIXEL_DATA && el.depth === 0 ? 'stop' : undefined),
    );
  } catch (err) {
    if (err instanceof DicomWalkError && err.kind === 'too-deep') {
      throw new DimseError(DicomStatus.CannotUnderstand, `data set refused: ${err.message}`);
    }
    // malformed / truncated: the parser that follows says so in its own words
  }
}

/** The File Meta Information group (always Explicit VR Little Endian): where it ends and the transfer syntax. */
function readMeta(buf: Buffer): { end: number; transferSyntax: string } | undefined {
  // Element by element rather than with walkDataset: what follows the group may be deflated bytes, not elements.
  let transferSyntax: string | undefined;
  let p = META_START;
  while (p + 8 <= buf.length && buf.readUInt16LE(p) === 0x0002) {
    const vr = buf.toString('latin1', p + 4, p + 6);
    const long = LONG_META_VRS.has(vr);
    if (long && p + 12 > buf.length) return undefined;
    const valueOffset = p + (long ? 12 : 8);
    const length = long ? buf.readUInt32LE(p + 8) : buf.readUInt16LE(p + 6);
    if (buf.readUInt16LE(p + 2) === TRANSFER_SYNTAX_ELEMENT) {
      transferSyntax = buf.toString('latin1', valueOffset, valueOffset + length).replace(/[\0 ]+$/, '');
    }
    p = valueOffset + length;
  }
  if (p + 8 > buf.length && p !== buf.length) return undefined;
  return transferSyntax === undefined ? undefined : { end: p, transferSyntax };
}
