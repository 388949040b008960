/**
 * Owns "the scanner is still sending": which associations from the scanner's AE title are open and which studies they
 * stored images of, learnt from the DICOM edge's events (a store opened, an image indexed, an association closed).
 * Kept in memory only: after a restart no association is open. Stores that are C-MOVE sub-operations (ours) do not
 * count: the scanner pushing on its own is what a retrieve must not race.
 */
import type { AssociationInfo, StoreRequestInfo } from '../dimse/types.js';

interface OpenAssociation {
  /** Studies of the images it stored. */
  studies: Set<string>;
  /** SOP Instance UIDs of its stores whose image is not indexed yet. */
  pending: Set<string>;
}

export class ScannerSending {
  private readonly open = new Map<string, OpenAssociation>();
  /** SOP Instance UID of a store in flight -> its association id. */
  private readonly storeOf = new Map<string, string>();

  /**
   * @param scannerAe the scanner's AE title (config scanner.aeTitle), compared as DICOM does, without padding.
   * @param stopped called with the studies no open association of the scanner is storing any more.
   */
  constructor(
    private readonly scannerAe: string,
    private readonly stopped: (studies: string[]) => void = () => undefined,
  ) {}

  /** A C-STORE began (the DICOM edge's openStore). */
  storeOpened(req: Pick<StoreRequestInfo, 'association' | 'sopInstanceUid' | 'moveOriginatorAe'>): void {
    if (req.moveOriginatorAe || req.association.callingAe.trim() !== this.scannerAe.trim()) return;
    let a = this.open.get(req.association.id);
    if (!a) this.open.set(req.association.id, (a = { studies: new Set(), pending: new Set() }));
    a.pending.add(req.sopInstanceUid);
    this.storeOf.set(req.sopInstanceUid, req.association.id);
  }

  /** An image was indexed (Ingest's 'instance' event): its association is storing that study. */
  instance(i: { sopInstanceUid: string; studyInstanceUid: string }): void {
    const id = this.storeOf.get(i.sopInstanceUid);
    if (id === undefined) return;
    this.storeOf.delete(i.sopInstanceUid);
    const a = this.open.get(id);
    if (!a) return;
    a.pending.delete(i.sopInstanceUid);
    a.studies.add(i.studyInstanceUid);
  }

  /** The association ended (released, aborted, or its connection lost). */
  closed(association: Pick<AssociationInfo, 'id'>): void {
    const a = this.open.get(association.id);
    if (!a) return;
    this.open.delete(association.id);
    for (const sop of a.pending) if (this.storeOf.get(sop) === association.id) this.storeOf.delete(sop);
    const done = [...a.studies].filter((s) => !this.isSending(s));
    if (done.length) this.stopped(done);
  }

  /** An association of the scanner that stored images of `study` is open. */
  isSending(study: string): boolean {
    for (const a of this.open.values()) if (a.studies.has(study)) return true;
    return false;
  }

  /** Open associations of the scanner (status, tests). */
  get associations(): number {
    return this.open.size;
  }
}
