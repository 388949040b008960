/**
 * The timers of one upper layer connection, on an injectable clock: ARTIM (PS3.8 9.1.5), the requestor's wait for an
 * A-ASSOCIATE-AC or A-RELEASE-RP, and the idle timer of an established association, which never fires while the
 * service user has work in flight. At most one timer of each kind is armed; a PDU only updates a timestamp.
 */
import type { Clock, TimerHandle } from './clock.js';

export class UlTimers {
  private artim: TimerHandle | undefined;
  private wait: TimerHandle | undefined;
  private lastActivity = 0;
  private busyCount = 0;

  constructor(
    private readonly clock: Clock,
    readonly artimMs: number,
    readonly idleMs: number,
  ) {}

  get busy(): number {
    return this.busyCount;
  }

  /** Something went either way on the connection. */
  touch(): void {
    this.lastActivity = this.clock.now();
  }

  workStarted(): void {
    this.busyCount++;
  }

  workFinished(): void {
    this.busyCount = Math.max(0, this.busyCount - 1);
    this.touch();
  }

  /** (Re)starts ARTIM. */
  startArtim(expired: () => void): void {
    if (this.artim) this.clock.clearTimeout(this.artim);
    this.artim = this.clock.setTimeout(() => {
      this.artim = undefined;
      expired();
    }, this.artimMs);
  }

  /** The requestor's wait for an answer, as long as ARTIM. */
  startWait(expired: () => void): void {
    if (this.wait) this.clock.clearTimeout(this.wait);
    this.wait = this.clock.setTimeout(() => {
      this.wait = undefined;
      expired();
    }, this.artimMs);
  }

  /** The idle timer: `idle(ms)` once nothing moved for idleMs and no work is in flight, while `watching()`. */
  startIdle(watching: () => boolean, idle: (idleForMs: number) => void, ms = this.idleMs): void {
    if (this.wait) this.clock.clearTimeout(this.wait);
    this.wait = this.clock.setTimeout(() => {
      this.wait = undefined;
      if (!watching()) return;
      if (this.busyCount > 0) return this.startIdle(watching, idle);
      const idleFor = this.clock.now() - this.lastActivity;
      if (idleFor >= this.idleMs) return idle(idleFor);
      this.startIdle(watching, idle, this.idleMs - idleFor);
    }, ms);
  }

  stop(): void {
    if (this.artim) this.clock.clearTimeout(this.artim);
    if (this.wait) this.clock.clearTimeout(this.wait);
    this.artim = undefined;
    this.wait = undefined;
  }
}
