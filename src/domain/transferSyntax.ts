/** Transfer syntaxes accepted for storage (SPEC section 6), stored exactly as received. */
export const TransferSyntax = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  JpegBaseline: '1.2.840.10008.1.2.4.50',
  JpegExtended: '1.2.840.10008.1.2.4.51',
  JpegLossless: '1.2.840.10008.1.2.4.57',
  JpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  JpegLsLossless: '1.2.840.10008.1.2.4.80',
  JpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  Jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  Jpeg2000: '1.2.840.10008.1.2.4.91',
  RleLossless: '1.2.840.10008.1.2.5',
} as const;

/** Every syntax the storage SCP accepts. Which one is used follows the sender's proposal order (pickTransferSyntax). */
export const STORAGE_TRANSFER_SYNTAXES: readonly string[] = [
  TransferSyntax.JpegLsLossless,
  TransferSyntax.JpegLsNearLossless,
  TransferSyntax.Jpeg2000Lossless,
  TransferSyntax.Jpeg2000,
  TransferSyntax.JpegLosslessSV1,
  TransferSyntax.JpegLossless,
  TransferSyntax.JpegBaseline,
  TransferSyntax.JpegExtended,
  TransferSyntax.RleLossless,
  TransferSyntax.DeflatedExplicitVRLittleEndian,
  TransferSyntax.ExplicitVRLittleEndian,
  TransferSyntax.ExplicitVRBigEndian,
  TransferSyntax.ImplicitVRLittleEndian,
];

/** Syntaxes for non-storage services (verification, MPPS, Q/R). */
export const COMMAND_TRANSFER_SYNTAXES: readonly string[] = [
  TransferSyntax.ExplicitVRLittleEndian,
  TransferSyntax.ImplicitVRLittleEndian,
];

/**
 * The first syntax in the sender's own order that we accept: a sender proposes the encoding its file already has
 * first (dcmsend, Orthanc), so taking its order stores the data as it was, with no conversion on either side.
 */
export function pickTransferSyntax(proposed: readonly string[], accepted: readonly string[]): string | undefined {
  return proposed.find((ts) => accepted.includes(ts));
}
