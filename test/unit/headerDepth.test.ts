/** The stored header's depth bound: data sets nested beyond it are refused with C000 before dcmjs reads them. */
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { test } from 'node:test';
import { DimseError } from '../../src/domain/status.js';
import { TransferSyntax } from '../../src/domain/transferSyntax.js';
import { datasetOffset } from '../../src/storage/files.js';
import { parseHeader } from '../../src/storage/header.js';
import { MAX_HEADER_DEPTH } from '../../src/storage/headerScan.js';
import { encode, newUid } from '../helpers/dicomgen.js';
import { deepSequence } from '../helpers/parrotDimse.js';

/** A Part 10 MR header in Explicit VR LE whose Content Sequence nests `depth` levels (after the other elements). */
function nested(depth: number, ts: string = TransferSyntax.ExplicitVRLittleEndian): Buffer {
  const base = encode(
    {
      SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
      SOPInstanceUID: newUid(),
      StudyInstanceUID: newUid(),
      SeriesInstanceUID: newUid(),
      Modality: 'MR',
    },
    ts,
  );
  const at = datasetOffset(base);
  const body = Buffer.concat([base.subarray(at), deepSequence(0x0040, 0xa730, depth)]);
  const data = ts === TransferSyntax.DeflatedExplicitVRLittleEndian ? zlib.deflateRawSync(body) : body;
  return Buffer.concat([base.subarray(0, at), data]);
}

function refusedC000(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (err) {
    return err instanceof DimseError && err.status === 0xc000 && /nested deeper/.test(err.message);
  }
}

test('a data set nested 100 000 deep is refused with C000', () => {
  assert.ok(refusedC000(() => parseHeader(nested(100_000), true)));
});

test('the first 64 KiB of such a file is enough to refuse it (the head the receive path sees first)', () => {
  const buf = nested(100_000).subarray(0, 64 * 1024);
  assert.ok(refusedC000(() => parseHeader(buf, false)));
});

test('nesting up to the bound parses; one level deeper is refused', () => {
  assert.doesNotThrow(() => parseHeader(nested(MAX_HEADER_DEPTH), true));
  const header = parseHeader(nested(10), true);
  assert.ok(header !== 'need-more' && header.Modality === 'MR');
  assert.ok(refusedC000(() => parseHeader(nested(MAX_HEADER_DEPTH + 1), true)));
});

test('deflated data sets are inflated for the check', () => {
  assert.ok(refusedC000(() => parseHeader(nested(5000, TransferSyntax.DeflatedExplicitVRLittleEndian), true)));
  assert.doesNotThrow(() => parseHeader(nested(5, TransferSyntax.DeflatedExplicitVRLittleEndian), true));
});

test('bytes that are not Part 10 are refused for what they are, not for their depth', () => {
  assert.ok(!refusedC000(() => parseHeader(Buffer.from('not dicom at all'), true)));
  assert.ok(!refusedC000(() => parseHeader(Buffer.alloc(200), true)));
});
