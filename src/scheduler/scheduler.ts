/** Owns when reconcile passes run: cron ticks and triggers (debounced, when quiet, now), never two at once. */
import cron from 'node-cron';
import type { Logger } from '../logging/logger.js';
import { Loop } from './loop.js';

export type RunReason = 'tick' | 'trigger';

/** What `schedule` hands back; node-cron's tasks also tell when they fire next. */
export interface ScheduledHandle {
  stop(): void;
  getNextRun?: () => Date | null;
}

export interface SchedulerOptions {
  /** node-cron expression with seconds, e.g. '*\/15 * * * * *'. */
  cron: string;
  /** Initial state (config scheduler.enabled): false starts paused. */
  enabled: boolean;
  /** One reconcile run over all active scans. */
  job: (reason: RunReason) => Promise<void>;
  log: Logger;
  /** Consulted before every run (tick or trigger): the CLI's pause flag, so pause/resume needs no restart. */
  isPaused?: () => Promise<boolean>;
  now?: () => Date;
  /** A burst of triggers within this window becomes one run (default 200). */
  debounceMs?: number;
  /** `triggerWhenQuiet`: how long a stream of events must pause before it triggers (default 250). */
  quietMs?: number;
  /** Injected for tests; default node-cron. */
  schedule?: (expr: string, fn: () => void) => ScheduledHandle;
}

export interface SchedulerState {
  paused: boolean;
  running: boolean;
  lastRunAt?: Date;
  lastRunMs?: number;
  nextRunAt?: Date;
  /** Message of the last run's error; cleared by a run that succeeds. */
  lastError?: string;
  runs: number;
  skipped: number;
}

const DEFAULT_DEBOUNCE_MS = 200;
const DEFAULT_QUIET_MS = 250;

/** What a pass of the loop is asked with: runNow() skips the pause check. */
interface PassRequest {
  reason: RunReason;
  force: boolean;
}

/**
 * Runs the reconcile job on a cron schedule, and soon after a trigger (an image arrived, an MPPS N-SET).
 * Runs never overlap: a tick during a run is skipped (the tick is only a safety net), while a trigger during a run
 * asks for exactly one follow-up run, since what triggered it may have arrived after the running job looked.
 */
export class Scheduler {
  private readonly opts: SchedulerOptions;
  private readonly now: () => Date;
  private readonly debounceMs: number;
  private task: ScheduledHandle | undefined;
  private stopped = false;
  /** pause()/resume() and scheduler.enabled. */
  private pausedHere: boolean;
  /** Last answer of isPaused(); false until asked. */
  private pausedFlag = false;
  /** The effective state last logged, so a state change is logged once. */
  private announced: boolean;
  private flagError: string | undefined;
  /** Runs passes one at a time; a trigger during a run queues exactly one follow-up there. */
  private readonly loop: Loop<PassRequest>;
  /** The job is running (not just the pause flag being read before it). */
  private executing = false;
  private currentStartedAt = 0;
  /** A tick or trigger reading the pause flag, about to run. */
  private deciding: Promise<boolean> | undefined;
  private debounce: ReturnType<typeof setTimeout> | undefined;
  private quiet: ReturnType<typeof setTimeout> | undefined;
  private readonly quietMs: number;
  private lastRunAt: Date | undefined;
  private lastRunMs: number | undefined;
  private lastError: string | undefined;
  private runs = 0;
  private skipped = 0;

  constructor(opts: SchedulerOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => new Date());
    this.debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.quietMs = opts.quietMs ?? DEFAULT_QUIET_MS;
    this.pausedHere = !opts.enabled;
    this.announced = this.pausedHere;
    this.loop = new Loop<PassRequest>({
      run: (req) => this.pass(req),
      // pass() catches the job's errors; this is only a safety net.
      onError: (err) => this.opts.log.error(`scheduler pass failed: ${String(err)}`),
      merge: (queued, next) => ({ reason: queued.reason, force: queued.force || next.force }),
    });
  }

  /** Registers the cron task. A second call does nothing. */
  start(): void {
    if (this.task || this.stopped) return;
    const schedule = this.opts.schedule ?? ((expr, fn) => nodeCronSchedule(expr, fn, this.opts.log));
    this.task = schedule(this.opts.cron, () => void this.attempt('tick'));
    this.opts.log.info(`scheduler started (${this.opts.cron})${this.pausedHere ? ', paused' : ''}`, {
      cron: this.opts.cron,
    });
  }

  /** "Run soon": bursts within debounceMs coalesce into one run; during a run, one follow-up run after it. */
  trigger(): void {
    if (this.stopped || this.pausedHere) return;
    if (this.executing) return this.followUp();
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.attempt('trigger');
    }, this.debounceMs);
  }

  /**
   * "Run now": a single event that completes something (an N-SET, the last awaited image, the scanner's association
   * closing) starts a run at once, with no debounce or quiet window; during a run, one follow-up run after it. A pending
   * debounce or quiet trigger is dropped: this run sees what it was waiting for.
   */
  triggerNow(): void {
    if (this.stopped || this.pausedHere) return;
    if (this.executing) return this.followUp();
    this.cancelPending();
    void this.attempt('trigger');
  }

  /**
   * "Run once this stream pauses" (images of an active scan): each call restarts a `quietMs` timer, and only when it
   * runs out does the trigger fire. A pass per trigger while a series streams in (a C-FIND association each, ~20 a
   * second) halved the receive rate; the cron ticks still run during a long stream.
   */
  triggerWhenQuiet(): void {
    if (this.stopped || this.pausedHere) return;
    if (this.quiet) clearTimeout(this.quiet);
    this.quiet = setTimeout(() => {
      this.quiet = undefined;
      // The pause already coalesced the stream: no debounce window on top.
      if (this.executing) this.followUp();
      else if (!this.debounce) void this.attempt('trigger');
    }, this.quietMs);
  }

  pause(): void {
    this.pausedHere = true;
    this.cancelPending();
    this.announce('pause()');
  }

  resume(): void {
    this.pausedHere = false;
    this.announce('resume()');
  }

  get state(): SchedulerState {
    const next = this.stopped ? null : (this.task?.getNextRun?.() ?? null);
    return {
      paused: this.pausedHere || this.pausedFlag,
      running: this.executing,
      ...(this.lastRunAt && { lastRunAt: this.lastRunAt }),
      ...(this.lastRunMs !== undefined && { lastRunMs: this.lastRunMs }),
      ...(next && { nextRunAt: next }),
      ...(this.lastError !== undefined && { lastError: this.lastError }),
      runs: this.runs,
      skipped: this.skipped,
    };
  }

  /** Stops the cron task and pending triggers, then waits for the running job. Safe to call twice. */
  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.task?.stop();
      this.cancelPending();
    }
    // A tick reading the pause flag uses the database: let it finish before the caller closes it.
    await this.deciding;
    await this.loop.stop();
  }

  /**
   * Runs the job once now, paused or not (an explicit request), unless a run is going: then resolves when that run
   * ends. Does nothing after stop().
   */
  runNow(): Promise<void> {
    const current = this.executing ? this.loop.current : undefined;
    if (current) return current;
    if (this.stopped) return Promise.resolve();
    return this.loop.notify({ reason: 'trigger', force: true });
  }

  /** One run after the one going, however many triggers ask for it meanwhile. */
  private followUp(): void {
    void this.loop.notify({ reason: 'trigger', force: false });
  }

  private cancelPending(): void {
    this.loop.dropQueued();
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = undefined;
    if (this.quiet) clearTimeout(this.quiet);
    this.quiet = undefined;
  }

  private attempt(reason: RunReason): void {
    if (this.stopped) return;
    if (this.executing) return this.overlap(reason);
    // Another tick or trigger is about to run: this one would only repeat it.
    if (this.deciding || this.loop.pending) return;
    void this.loop.notify({ reason, force: false });
  }

  /** One pass of the loop: the pause check (unless forced), then the job. */
  private async pass({ reason, force }: PassRequest): Promise<void> {
    if (this.stopped) return;
    if (!force) {
      this.deciding = this.isPaused();
      const paused = await this.deciding.finally(() => (this.deciding = undefined));
      if (paused || this.stopped) return;
    }
    await this.execute(reason);
  }

  private overlap(reason: RunReason): void {
    if (reason === 'trigger') return this.followUp();
    this.skipped++;
    const runningMs = this.now().getTime() - this.currentStartedAt;
    this.opts.log.warn(
      `scheduler tick skipped: the previous run is still going (for ${(runningMs / 1000).toFixed(1)} s)`,
      { runningMs, skipped: this.skipped },
    );
  }

  private async isPaused(): Promise<boolean> {
    if (this.opts.isPaused) {
      try {
        this.pausedFlag = await this.opts.isPaused();
        if (this.flagError !== undefined) this.opts.log.info('scheduler: the pause flag can be read again');
        this.flagError = undefined;
      } catch (err) {
        // Keep the last known value; say so once per distinct error, not on every tick.
        const msg = err instanceof Error ? err.message : String(err);
        if (msg !== this.flagError) this.opts.log.warn(`scheduler: cannot read the pause flag: ${msg}`);
        this.flagError = msg;
      }
    }
    this.announce('pause flag');
    return this.pausedHere || this.pausedFlag;
  }

  private announce(by: string): void {
    const paused = this.pausedHere || this.pausedFlag;
    if (paused === this.announced) return;
    this.announced = paused;
    this.opts.log.info(paused ? `scheduler paused (by ${by})` : `scheduler resumed (by ${by})`);
  }

  private async execute(reason: RunReason): Promise<void> {
    const started = this.now();
    this.currentStartedAt = started.getTime();
    this.executing = true;
    this.runs++;
    try {
      await this.opts.job(reason);
      this.lastError = undefined;
    } catch (err) {
      this.lastError = err instanceof Error ? err.message : String(err);
      this.opts.log.error(`scheduler run failed: ${this.lastError}`, {
        reason,
        ...(err instanceof Error && err.stack && { stack: err.stack }),
      });
    } finally {
      this.lastRunAt = started;
      this.lastRunMs = this.now().getTime() - started.getTime();
      this.executing = false;
    }
  }
}

function nodeCronSchedule(expr: string, fn: () => void, log: Logger): ScheduledHandle {
  const task = cron.schedule(expr, fn, {
    name: 'scannode-reconcile',
    logger: {
      info: (m) => log.debug(m, { lib: 'node-cron' }),
      warn: (m) => log.warn(m, { lib: 'node-cron' }),
      error: (m) => log.error(String(m), { lib: 'node-cron' }),
      debug: (m) => log.debug(String(m), { lib: 'node-cron' }),
    },
  });
  return {
    // destroy() also drops the task from node-cron's global registry.
    stop: () => void Promise.resolve(task.destroy()).catch((err: unknown) => log.warn(`node-cron: ${String(err)}`)),
    getNextRun: () => task.getNextRun(),
  };
}
