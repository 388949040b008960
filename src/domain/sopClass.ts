/**
 * Which abstract syntaxes the C-STORE SCP accepts. dcmjs-dimse's StorageClass list has ~60 UIDs; a scanner sends
 * SEG, RT, SR, KOS, GSPS and private classes too. Every storage SOP class of PS3.4 Annex B sits under
 * 1.2.840.10008.5.1.4.1.1, and vendors' private storage classes live under their own roots, so: accept any valid
 * UID that is not a known non-storage service (verification, Q/R, MPPS, worklist, commitment...).
 */
import { isValidUid } from './uid.js';

export const Sop = {
  Verification: '1.2.840.10008.1.1',
  Mpps: '1.2.840.10008.3.1.2.3.3',
  StudyRootFind: '1.2.840.10008.5.1.4.1.2.2.1',
  StudyRootMove: '1.2.840.10008.5.1.4.1.2.2.2',
  PatientRootFind: '1.2.840.10008.5.1.4.1.2.1.1',
  PatientRootMove: '1.2.840.10008.5.1.4.1.2.1.2',
} as const;

const NON_STORAGE_PREFIXES = [
  '1.2.840.10008.1.', // verification, storage commitment, transfer syntaxes, ...
  '1.2.840.10008.3.', // study/visit management, MPPS, ...
  '1.2.840.10008.5.1.1.', // print management
  '1.2.840.10008.5.1.4.1.2.', // query / retrieve
  '1.2.840.10008.5.1.4.31', // modality worklist
  '1.2.840.10008.5.1.4.32', // general purpose worklist
  '1.2.840.10008.5.1.4.33', // instance availability
  '1.2.840.10008.5.1.4.34', // UPS, RT plans delivery
  '1.2.840.10008.5.1.4.37', // general relevant patient information query
  '1.2.840.10008.5.1.4.38', // hanging protocol find/move
  '1.2.840.10008.5.1.4.39.2', // color palette find/move
  '1.2.840.10008.5.1.4.41', // implant template find
  '1.2.840.10008.5.1.4.42', // protocol approval
  '1.2.840.10008.5.1.4.43.2', // implant assembly find
  '1.2.840.10008.5.1.4.44.2', // implant template group find
  '1.2.840.10008.5.1.4.45.2', // product characteristics
  '1.2.840.10008.5.1.4.46', // substance approval
  '1.2.840.10008.5.1.4.20', // composite instance root retrieve
];

export function isStorageSopClass(uid: string): boolean {
  if (!isValidUid(uid)) return false;
  if (uid === Sop.Verification) return false;
  return !NON_STORAGE_PREFIXES.some((p) => uid.startsWith(p));
}
