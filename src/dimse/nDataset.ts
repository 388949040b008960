/**
 * The data sets of N-CREATE / N-SET requests (MPPS): gathered up to a fixed size, checked by the shared iterative
 * walker (src/domain/dicomWalk.ts: no recursion, nesting capped) and only then naturalized by dcmjs (through
 * dcmjs-dimse's `Dataset`, whose reader recurses into sequences). A data set that is too big, too deep or malformed
 * becomes a failure status, never an exception that leaves the association.
 */
import dimse from 'dcmjs-dimse';
import { DicomWalkError, walkDataset } from '../domain/dicomWalk.js';
import { DicomStatus } from '../domain/status.js';
import { TransferSyntax } from '../domain/transferSyntax.js';
import type { DimseResult } from './types.js';
import type { DatasetSink } from './dimseMessages.js';

const { Dataset } = dimse;

/** An MPPS with thousands of referenced images is well under 2 MiB. */
export const MAX_N_DATASET = 8 * 1024 * 1024;
/** MPPS nests three levels (Performed Series > Referenced Image); anything beyond 16 is not a data set we serve. */
export const MAX_N_DEPTH = 16;

export type ParsedDataset = { ok: true; dataset: Record<string, unknown> } | { ok: false; result: DimseResult };

/** Gathers a data set's pieces (copied: they are views into socket buffers), up to MAX_N_DATASET bytes. */
export class DatasetCollector implements DatasetSink {
  private parts: Buffer[] = [];
  private length = 0;
  private over = false;

  constructor(private readonly done: (bytes: Buffer | undefined) => void) {}

  write(piece: Buffer): void {
    if (this.over) return;
    this.length += piece.length;
    if (this.length > MAX_N_DATASET) {
      // The rest is read and dropped; the request gets a failure status.
      this.over = true;
      this.parts = [];
      return;
    }
    this.parts.push(Buffer.from(piece));
  }

  end(): void {
    const parts = this.parts;
    this.parts = [];
    this.done(this.over ? undefined : Buffer.concat(parts, this.length));
  }

  abort(): void {
    this.parts = [];
  }
}

/** The data set as naturalized dcmjs JSON, or the failure status to answer. */
export function parseNDataset(bytes: Buffer | undefined, transferSyntaxUid: string): ParsedDataset {
  if (bytes === undefined) {
    return fail(`the data set is larger than ${MAX_N_DATASET / 1024 / 1024} MiB`);
  }
  const explicitVr = transferSyntaxUid !== TransferSyntax.ImplicitVRLittleEndian;
  const littleEndian = transferSyntaxUid !== TransferSyntax.ExplicitVRBigEndian;
  try {
    walkDataset(bytes, { explicitVr, littleEndian, maxDepth: MAX_N_DEPTH, complete: true });
  } catch (err) {
    if (err instanceof DicomWalkError) return fail(`data set ${err.kind}: ${err.message}`);
    throw err;
  }
  try {
    const ds = new Dataset(bytes, transferSyntaxUid);
    return { ok: true, dataset: ds.getElements() as Record<string, unknown> };
  } catch (err) {
    return fail(`data set cannot be parsed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function fail(comment: string): ParsedDataset {
  return { ok: false, result: { status: DicomStatus.ProcessingFailure, comment } };
}
