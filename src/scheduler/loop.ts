/** Owns the one loop primitive of the node: start / notify / stop, runs never overlapping (async-mutex). */
import { Mutex } from 'async-mutex';

/** The timer functions a loop uses for its period; tests inject manual ones. */
export interface LoopTimers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export interface LoopOptions<A> {
  /** One run. A failure goes to `onError`; the loop goes on. */
  run: (arg: A) => Promise<void>;
  onError: (err: unknown) => void;
  /** A run every `ms` after start() (the safety net beside the notifications), with this argument. */
  every?: { ms: number; arg: A };
  /** The period does not keep the process alive (default false). */
  unref?: boolean;
  /** How a notify folds into the run already queued (default: the queued one keeps its argument). */
  merge?: (queued: A, next: A) => A;
  timers?: LoopTimers;
}

interface Queued<A> {
  arg: A;
  dropped: boolean;
  done: Promise<void>;
}

const realTimers: LoopTimers = {
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

/**
 * A job that runs now and then, never twice at once (pg-boss's Worker). notify() runs it at once, or, while a run is
 * going, asks for exactly one more run after it however many notifications come meanwhile: what notified may have
 * come after the running one looked. stop() drops the queued run and waits for the one in flight.
 */
export class Loop<A = void> {
  private readonly mutex = new Mutex();
  private readonly timers: LoopTimers;
  private queued: Queued<A> | undefined;
  private inFlight: Promise<void> | undefined;
  private timer: unknown;
  private stopped = false;

  constructor(private readonly opts: LoopOptions<A>) {
    this.timers = opts.timers ?? realTimers;
  }

  /** Starts the period, if any. A second call, or one after stop(), does nothing. */
  start(): void {
    const every = this.opts.every;
    if (!every || this.timer !== undefined || this.stopped) return;
    this.timer = this.timers.setInterval(() => void this.notify(every.arg), every.ms);
    if (this.opts.unref) (this.timer as { unref?: () => void }).unref?.();
  }

  /** Runs now, or once more after the run going. Resolves (never rejects) when the run it asked for has ended. */
  notify(arg: A): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const waiting = this.queued;
    if (waiting) {
      if (this.opts.merge) waiting.arg = this.opts.merge(waiting.arg, arg);
      return waiting.done;
    }
    const q = { arg, dropped: false } as Queued<A>;
    // runExclusive calls back only after acquiring asynchronously: `this.queued = q` below is always set first.
    q.done = this.mutex.runExclusive(async () => {
      if (this.queued === q) this.queued = undefined;
      if (q.dropped || this.stopped) return;
      const run = this.opts.run(q.arg).catch((err: unknown) => this.opts.onError(err));
      this.inFlight = run;
      try {
        await run;
      } finally {
        this.inFlight = undefined;
      }
    });
    this.queued = q;
    return q.done;
  }

  /** A run is going. */
  get running(): boolean {
    return this.inFlight !== undefined;
  }

  /** The run going, resolved when it ends (never rejects); undefined when none is. */
  get current(): Promise<void> | undefined {
    return this.inFlight;
  }

  /** A run is asked for and has not started yet. */
  get pending(): boolean {
    return this.queued !== undefined;
  }

  /** Forgets the run asked for and not started yet (its notify() resolves without it). */
  dropQueued(): void {
    if (this.queued) this.queued.dropped = true;
    this.queued = undefined;
  }

  /** Stops the period and the queued run, then waits for the run in flight. Safe to call twice. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.timers.clearInterval(this.timer);
    this.dropQueued();
    await this.mutex.waitForUnlock();
  }
}
