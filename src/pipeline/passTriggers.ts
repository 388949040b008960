/** Owns which events of the node start a reconcile pass, and how soon: images, N-SETs, the scanner finishing. */
import type { IngestedInstance } from './ingest.js';
import type { AwaitedImages } from './awaitedImages.js';

/** What the triggers ask of the scheduler. */
export interface PassScheduler {
  triggerNow(): void;
  triggerWhenQuiet(): void;
}

export interface PassTriggerParts {
  /** Whether a study has an active scan request (asked for every image). */
  isActiveStudy(studyInstanceUid: string): Promise<boolean>;
  /** The images waiting scans still miss. */
  awaited: AwaitedImages;
  scheduler: PassScheduler;
}

/**
 * Events that complete something start a pass at once: the scanner's last association storing an active study closes,
 * the last image a waiting scan missed arrives, an N-SET, a wake-up the reconciler asked for. Other images of an active
 * study start one once their stream pauses (a burst, a series): a pass per image halved the receive rate.
 */
export class PassTriggers {
  constructor(private readonly parts: PassTriggerParts) {}

  /** An image was indexed (ingest's 'instance'). */
  imageStored(i: IngestedInstance): void {
    if (i.duplicate) return;
    const { isActiveStudy, awaited, scheduler } = this.parts;
    if (awaited.arrived(i)) return scheduler.triggerNow();
    isActiveStudy(i.studyInstanceUid).then(
      (yes) => yes && scheduler.triggerWhenQuiet(),
      () => undefined,
    );
  }

  /** No open association of the scanner is storing these studies any more (ScannerSending). */
  scannerStopped(studies: string[]): void {
    Promise.all(studies.map((s) => this.parts.isActiveStudy(s))).then(
      (active) => active.some(Boolean) && this.parts.scheduler.triggerNow(),
      () => undefined,
    );
  }

  /** An MPPS N-SET was answered: the step may have completed or been discontinued. */
  nSetDone(): void {
    this.parts.scheduler.triggerNow();
  }

  /** The reconciler asked to be woken (a quiet period or a retry ends). */
  wake(): void {
    this.parts.scheduler.triggerNow();
  }
}
