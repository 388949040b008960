/**
 * The figures of `npm run bench`: medians over rounds, the ratios against each receiver, the targets of issue 12
 * with pass / MISS, the printed table. run.ts feeds it the measurements and writes what `summarize` returns.
 */
import type { MoveMeasurement } from './peers.js';
import type { Measurement, Receiver } from './receivers.js';
import type { RssResult } from './rss.js';

const MiB = 1024 * 1024;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  if (s.length === 0) return NaN;
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

export const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
export const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');

/** One line of the summary: a measurement, its figures, the ratio and the target it is held to. */
export interface TargetRow {
  measurement: string;
  figures: string;
  /** scannode / other (a time ratio for C-MOVE), or the value itself (MiB, s) when there is no other. */
  value: number;
  target: string;
  /** null: no target (shown for context). */
  ok: boolean | null;
}

export interface RateFigures {
  instPerSec: number;
  mbPerSec: number;
  /** scannode / this receiver, per round (same round, so the same page cache and load). */
  perRoundRatio: number[];
}

/** Medians per receiver of one phase, with per-round ratios of scannode against each. */
export function rates(measurements: Measurement[], phase: 'single' | 'multi'): Partial<Record<Receiver, RateFigures>> {
  const of = measurements.filter((m) => m.phase === phase);
  const out: Partial<Record<Receiver, RateFigures>> = {};
  for (const kind of new Set(of.map((m) => m.receiver))) {
    const mine = of.filter((m) => m.receiver === kind);
    const perRoundRatio = mine.map((m) => {
      const s = of.find((x) => x.receiver === 'scannode' && x.round === m.round);
      return s ? s.instPerSec / m.instPerSec : NaN;
    });
    out[kind] = {
      instPerSec: median(mine.map((m) => m.instPerSec)),
      mbPerSec: median(mine.map((m) => m.mbPerSec)),
      perRoundRatio,
    };
  }
  return out;
}

export interface Figures {
  instances: number;
  senders: number;
  single: Partial<Record<Receiver, RateFigures>>;
  multi: Partial<Record<Receiver, RateFigures>>;
  rss: RssResult[];
  rssLabels: string[];
  moves: MoveMeasurement[];
  /** The completion bench (completion.ts), when measured: medians in ms. */
  completion?: {
    lastImageToFinishedMs: { median: number };
    nSetToFinishedMinusMoveMs: { median: number };
    moveMs: { median: number };
  };
  importRatio?: { files: number; ratio: number };
  /** The forwarding bench (forward.ts): scannode's C-STORE SCU vs dcmsend, medians in inst/s. */
  forward?: { scannode: number; dcmsend: number; ratio: number };
}

function rateRow(
  label: string,
  rates: Partial<Record<Receiver, RateFigures>>,
  other: Receiver,
  min: number | null,
): TargetRow | undefined {
  const s = rates.scannode;
  const o = rates[other];
  if (!s || !o) return undefined;
  const ratio = s.instPerSec / o.instPerSec;
  return {
    measurement: `${label} vs ${other}`,
    figures: `${f1(s.instPerSec)} vs ${f1(o.instPerSec)} inst/s`,
    value: ratio,
    target: min === null ? '' : `>= ${min}x`,
    ok: min === null ? null : ratio >= min,
  };
}

/** The rows of the summary table, in the order of the targets. */
export function targetRows(f: Figures): TargetRow[] {
  const one = `1 association, ${f.instances} x 0.5 MB`;
  const four = `${f.senders} senders`;
  const rows: Array<TargetRow | undefined> = [
    rateRow(one, f.single, 'storescp+fsync', 0.9),
    rateRow(one, f.single, 'storescp', 0.6),
    rateRow(one, f.single, 'orthanc', 3),
    rateRow(four, f.multi, 'storescp --fork', 1.0),
    rateRow(four, f.multi, 'storescp --fork+fsync', null),
  ];
  f.rss.forEach((r, i) => {
    const limit = r.object === 'instance' ? 160 : 200;
    const mib = r.hwmAfter / MiB;
    rows.push({
      measurement: `peak RSS, ${f.rssLabels[i] ?? r.object}`,
      figures: `VmHWM ${f1(r.hwmBefore / MiB)} MiB at start, stored in ${f1(r.sendMs / 1000)} s`,
      value: mib,
      target: `<= ${limit} MiB`,
      ok: mib <= limit,
    });
  });
  if (f.moves.length) {
    const med = (kind: 'storescp' | 'scannode') =>
      median(f.moves.filter((m) => m.receiver === kind).map((m) => m.ms)) / 1000;
    rows.push({
      measurement: `C-MOVE of ${f.instances} from Orthanc, time vs Orthanc -> storescp`,
      figures: `${f2(med('scannode'))} s vs ${f2(med('storescp'))} s`,
      value: med('scannode') / med('storescp'),
      target: '<= 1.2x',
      ok: med('scannode') / med('storescp') <= 1.2,
    });
  }
  if (f.completion) {
    const last = f.completion.lastImageToFinishedMs.median / 1000;
    const pulled = f.completion.nSetToFinishedMinusMoveMs.median / 1000;
    rows.push(
      {
        measurement: 'last image (MPPS COMPLETED first) -> finished-scans',
        figures: `${f2(last)} s`,
        value: last,
        target: '<= 1 s',
        ok: last <= 1,
      },
      {
        measurement: 'N-SET COMPLETED, images pulled -> finished-scans, minus the C-MOVE time',
        figures: `${f2(pulled)} s (C-MOVE ${f2(f.completion.moveMs.median / 1000)} s)`,
        value: pulled,
        target: '<= 1 s',
        ok: pulled <= 1,
      },
    );
  }
  if (f.importRatio) {
    rows.push({
      measurement: `import ${f.importRatio.files} files vs Orthanc REST upload (issue 5)`,
      figures: '',
      value: f.importRatio.ratio,
      target: '>= 2x',
      ok: f.importRatio.ratio >= 2,
    });
  }
  if (f.forward) {
    rows.push({
      measurement: `forwarding ${f.instances} x 0.5 MB to storescp vs dcmsend (issue 15)`,
      figures: `${f1(f.forward.scannode)} vs ${f1(f.forward.dcmsend)} inst/s`,
      value: f.forward.ratio,
      target: '>= 0.8x',
      ok: f.forward.ratio >= 0.8,
    });
  }
  return rows.filter((r): r is TargetRow => r !== undefined);
}

/** A markdown table with padded columns. */
export function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const line = (r: string[]) => `| ${widths.map((w, i) => (r[i] ?? '').padEnd(w)).join(' | ')} |`;
  const [head, ...body] = rows;
  return [line(head ?? []), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)];
}

export function formatTargets(rows: TargetRow[]): string[] {
  return table([
    ['measurement', 'figures (medians)', 'ratio / value', 'target', 'pass'],
    ...rows.map((r) => [r.measurement, r.figures, f2(r.value), r.target, r.ok === null ? '' : r.ok ? 'pass' : 'MISS']),
  ]);
}
