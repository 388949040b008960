import { TransferSyntax } from './transferSyntax.js';

/**
 * Did the data set arrive whole? The header parser stops before Pixel Data, so a data set cut inside its pixels would
 * pass. Pixel Data is (nearly always) the last large element, and its header sits in the first bytes we keep: its
 * declared length must fit in what arrived, and encapsulated pixel data must end with a Sequence Delimitation Item.
 * Pure: works on the head and tail bytes the spool kept.
 */
export function pixelDataTruncation(
  dataset: Buffer,
  datasetLength: number,
  tail: Buffer,
  transferSyntaxUid: string,
): string | undefined {
  if (transferSyntaxUid === TransferSyntax.DeflatedExplicitVRLittleEndian) return undefined;
  const bigEndian = transferSyntaxUid === TransferSyntax.ExplicitVRBigEndian;
  const implicit = transferSyntaxUid === TransferSyntax.ImplicitVRLittleEndian;
  const tag = bigEndian ? Buffer.from([0x7f, 0xe0, 0x00, 0x10]) : Buffer.from([0xe0, 0x7f, 0x10, 0x00]);
  let from = 0;
  for (;;) {
    const p = dataset.indexOf(tag, from);
    if (p < 0) return undefined;
    from = p + 1;
    let length: number;
    let headerLength: number;
    if (implicit) {
      if (p + 8 > dataset.length) return undefined;
      length = dataset.readUInt32LE(p + 4);
      headerLength = 8;
    } else {
      if (p + 12 > dataset.length) return undefined;
      const vr = dataset.toString('latin1', p + 4, p + 6);
      if (vr !== 'OB' && vr !== 'OW' && vr !== 'UN') continue;
      if (dataset[p + 6] !== 0 || dataset[p + 7] !== 0) continue;
      length = bigEndian ? dataset.readUInt32BE(p + 8) : dataset.readUInt32LE(p + 8);
      headerLength = 12;
    }
    if (length === 0xffffffff) {
      const delimiter = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
      if (tail.length < 8 || !tail.subarray(tail.length - 8).equals(delimiter)) {
        return 'encapsulated Pixel Data does not end with a sequence delimiter';
      }
      return undefined;
    }
    const end = p + headerLength + length;
    if (end > datasetLength) {
      return `Pixel Data declares ${length} bytes but only ${datasetLength - p - headerLength} arrived`;
    }
    return undefined;
  }
}
