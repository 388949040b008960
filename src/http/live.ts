import type { Logger } from '../logging/logger.js';

export interface LiveOptions {
  /** How often a change is looked for while someone watches (ms). */
  intervalMs?: number;
  /** A snapshot is rebuilt at least this often while someone watches, changed or not (ms). */
  refreshMs?: number;
}

type Listener = (json: string) => void;

/**
 * The status page's live feed: one snapshot built for all viewers, rebuilt soon after something changed (an image
 * stored, an MPPS, a request) and at least every `refreshMs` (completion, the scheduler, disk space), and sent only
 * when it differs from the last one. Nothing runs while nobody watches.
 */
export class LiveStatus {
  private readonly listeners = new Set<Listener>();
  private readonly intervalMs: number;
  private readonly refreshMs: number;
  private timer: NodeJS.Timeout | undefined;
  private dirty = true;
  private last: string | undefined;
  private lastBuiltAt = 0;
  private building: Promise<void> | undefined;

  constructor(
    private readonly build: () => Promise<unknown>,
    private readonly log: Logger,
    opts: LiveOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 300;
    this.refreshMs = opts.refreshMs ?? 2000;
  }

  /** Something changed: viewers get a new snapshot within intervalMs. */
  touch(): void {
    this.dirty = true;
  }

  /** Adds a viewer; it gets the current snapshot at once. Returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.last !== undefined) listener(this.last);
    else this.dirty = true;
    this.timer ??= setInterval(() => void this.tick(), this.intervalMs);
    void this.tick();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.last = undefined;
  }

  private tick(): Promise<void> {
    if (this.building || this.listeners.size === 0) return this.building ?? Promise.resolve();
    if (!this.dirty && Date.now() - this.lastBuiltAt < this.refreshMs) return Promise.resolve();
    this.dirty = false;
    this.building = (async () => {
      try {
        const json = JSON.stringify(await this.build());
        this.lastBuiltAt = Date.now();
        if (json === this.last) return;
        this.last = json;
        for (const l of this.listeners) l(json);
      } catch (err) {
        this.log.warn('status snapshot failed', { err: String(err) });
      } finally {
        this.building = undefined;
      }
    })();
    return this.building;
  }
}
