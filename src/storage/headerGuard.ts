/**
 * Owns the depth check on its own: the sequence nesting of a Part 10 data set, walked without recursion by the header
 * scanner (storage/headerScan), so that a peer's data set nested 100 000 deep is refused with C000 instead of wedging
 * or overflowing a recursive reader. parseHeader runs the same scan; this entry point answers only that question.
 */
import { DimseError } from '../domain/status.js';
import { MAX_HEADER_DEPTH, scanBuffer } from './headerScan.js';

export { MAX_HEADER_DEPTH };

/**
 * Throws DimseError(C000) when the data set of the Part 10 bytes in `buf` nests sequences deeper than
 * MAX_HEADER_DEPTH before Pixel Data. Anything else the scan finds (not DICOM, odd lengths, a cut buffer) is left to
 * the parser, whose messages and statuses the callers already map.
 */
export function assertHeaderDepth(buf: Buffer, complete: boolean): void {
  try {
    scanBuffer(buf, complete);
  } catch (err) {
    if (err instanceof DimseError && /nested deeper/.test(err.message)) throw err;
  }
}
