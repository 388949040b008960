/**
 * Owns "this image was the last one missing": per active study, what the last reconcile pass found missing (named
 * instances, or a count per series when the scanner only gave one). An image that completes that set starts a pass at
 * once instead of after the quiet window of a stream; any other image changes nothing. In memory only: without a pass
 * since start-up, images fall back to the quiet-window trigger.
 */
import type { MissingSeries } from '../domain/completeness.js';

interface AwaitedSeries {
  /** Named instances still missing. */
  uids: Set<string>;
  /** Instances still missing by count (more than the named ones). */
  unnamed: number;
}

export class AwaitedImages {
  private readonly byStudy = new Map<string, Map<string, AwaitedSeries>>();

  /** What a pass found missing of `study` (an empty list forgets it). */
  set(study: string, missing: readonly MissingSeries[]): void {
    if (!missing.length) return void this.byStudy.delete(study);
    const series = new Map<string, AwaitedSeries>();
    for (const m of missing) {
      const uids = new Set(m.sopInstanceUids);
      series.set(m.seriesInstanceUid, { uids, unnamed: Math.max(0, m.missing - uids.size) });
    }
    this.byStudy.set(study, series);
  }

  forget(study: string): void {
    this.byStudy.delete(study);
  }

  /**
   * A new image (not a duplicate) was indexed. True when it was the last one awaited of its study; the study is
   * forgotten then (the pass it starts records what is still missing, if anything).
   */
  arrived(i: { studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string }): boolean {
    const study = this.byStudy.get(i.studyInstanceUid);
    const s = study?.get(i.seriesInstanceUid);
    if (!study || !s) return false;
    if (!s.uids.delete(i.sopInstanceUid)) {
      if (s.unnamed === 0) return false;
      s.unnamed--;
    }
    if (s.uids.size === 0 && s.unnamed === 0) study.delete(i.seriesInstanceUid);
    if (study.size > 0) return false;
    this.byStudy.delete(i.studyInstanceUid);
    return true;
  }
}
