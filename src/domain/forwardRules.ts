/** Owns which destinations an ended scan goes to, by the `forward` rules of the config. Pure. */

export interface ForwardRule {
  to: string[];
  when: 'finished' | 'failed' | 'both';
  modality?: string[];
  from?: string[];
  seriesDescription?: string;
}

export interface ForwardTarget {
  destination: string;
  /** Only the series whose description matches this expression; undefined: every series. */
  seriesFilter?: string;
}

/**
 * The destinations of a scan that ended `state`, from the remote `source`, whose series have these modalities: every
 * rule that matches adds its destinations, once each (the first rule naming a destination sets its series filter).
 */
export function forwardTargets(
  rules: readonly ForwardRule[],
  state: 'finished' | 'failed',
  modalities: readonly string[],
  source: string,
): ForwardTarget[] {
  const out = new Map<string, ForwardTarget>();
  for (const rule of rules) {
    if (rule.when !== 'both' && rule.when !== state) continue;
    if (rule.modality && !rule.modality.some((m) => modalities.includes(m))) continue;
    if (rule.from && !rule.from.includes(source)) continue;
    for (const destination of rule.to) {
      if (!out.has(destination)) {
        out.set(destination, {
          destination,
          ...(rule.seriesDescription ? { seriesFilter: rule.seriesDescription } : {}),
        });
      }
    }
  }
  return [...out.values()];
}

/** Whether a series is sent under a filter (a regular expression on its description; none: every series). */
export function seriesSelected(filter: string | null | undefined, description: string | null): boolean {
  return !filter || new RegExp(filter).test(description ?? '');
}

/** The wait before attempt `attempts + 1`: the first retry after `baseMs`, doubling, at most an hour. */
export function forwardBackoffMs(attempts: number, baseMs: number): number {
  return Math.min(baseMs * 2 ** Math.max(0, attempts - 1), 3_600_000);
}
