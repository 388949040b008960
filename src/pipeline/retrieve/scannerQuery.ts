/**
 * Owns what the scanner says a study holds: SERIES-level C-FIND (counts), IMAGE-level where a count is missing or above
 * the UIDs known here; the UIDs learnt are stored in scan_expected_instances.
 */
import { insertExpected } from '../../db/scanStore.js';
import type { Database } from '../../db/dataSource.js';
import type { ScanRow } from '../../db/scanEntities.js';
import { cFind, type ScuPeer } from '../../dimse/scu.js';
import type { SeriesExpectation } from '../../domain/completeness.js';
import { cleanUid, isValidUid } from '../../domain/uid.js';
import type { ScannerHealth } from './scannerHealth.js';

export interface ScannerQueryOptions {
  scanner: ScuPeer;
  peerOf?: (scan: ScanRow) => ScuPeer;
  /** Our AE title: the calling AE of every query. */
  aeTitle: string;
  findTimeoutMs: number;
}

function asNumber(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

export function uidOf(v: unknown): string | undefined {
  const u = cleanUid(typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined);
  return isValidUid(u) ? u : undefined;
}

export class ScannerQuery {
  constructor(
    private readonly db: Database,
    private readonly health: ScannerHealth,
    private readonly opts: ScannerQueryOptions,
  ) {}

  /**
   * SERIES-level C-FIND, then IMAGE-level for every series whose count is missing or more than the UIDs known here
   * (received, or learnt before). UIDs learnt are kept in scan_expected_instances (so a restart or a scanner gone
   * quiet keeps them). While a series streams in, its UIDs are known after the first pass: asking IMAGE-level again
   * on every image-triggered pass re-parsed the whole series each time and slowed receiving to ~40 images/s.
   */
  async series(
    scan: ScanRow,
    study: string,
    received: Map<string, Set<string>>,
    known: Map<string, SeriesExpectation>,
  ): Promise<Map<string, SeriesExpectation> | undefined> {
    const opts = { timeoutMs: this.opts.findTimeoutMs };
    const peer = this.opts.peerOf?.(scan) ?? this.opts.scanner;
    const out = new Map<string, SeriesExpectation>();
    try {
      const series = await cFind(peer, this.opts.aeTitle, 'SERIES', { StudyInstanceUID: study }, opts);
      for (const row of series) {
        const uid = uidOf(row.SeriesInstanceUID);
        if (!uid) continue;
        out.set(uid, {
          seriesInstanceUid: uid,
          seriesNumber: asNumber(row.SeriesNumber) ?? null,
          sopInstanceUids: [],
          scannerCount: asNumber(row.NumberOfSeriesRelatedInstances),
        });
      }
      const learnt: Array<{ series: string; sop: string; sopClass: string | null }> = [];
      for (const s of out.values()) {
        const here = new Set(received.get(s.seriesInstanceUid));
        for (const sop of known.get(s.seriesInstanceUid)?.sopInstanceUids ?? []) here.add(sop);
        if (s.scannerCount !== undefined && s.scannerCount <= here.size) continue;
        const images = await cFind(
          peer,
          this.opts.aeTitle,
          'IMAGE',
          { StudyInstanceUID: study, SeriesInstanceUID: s.seriesInstanceUid },
          opts,
        );
        for (const img of images) {
          const sop = uidOf(img.SOPInstanceUID);
          if (!sop) continue;
          s.sopInstanceUids.push(sop);
          learnt.push({ series: s.seriesInstanceUid, sop, sopClass: uidOf(img.SOPClassUID) ?? null });
        }
      }
      await insertExpected(
        this.db,
        learnt.map((l) => ({
          scanId: scan.id,
          sopInstanceUid: l.sop,
          seriesInstanceUid: l.series,
          sopClassUid: l.sopClass,
          mppsUid: null,
        })),
      );
      this.health.ok(scan);
      return out;
    } catch (err) {
      this.health.problem(scan, err, 'C-FIND');
      return undefined;
    }
  }
}

/** What the scanner says, merged into what the MPPS named (UIDs united, the scanner's count kept). */
export function merge(into: Map<string, SeriesExpectation>, from: Map<string, SeriesExpectation>): void {
  for (const s of from.values()) {
    const t = into.get(s.seriesInstanceUid);
    if (!t) {
      into.set(s.seriesInstanceUid, s);
      continue;
    }
    t.sopInstanceUids = [...new Set([...t.sopInstanceUids, ...s.sopInstanceUids])];
    if (s.scannerCount !== undefined) t.scannerCount = s.scannerCount;
    t.seriesNumber ??= s.seriesNumber;
  }
}
