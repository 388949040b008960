/** Owns per-key serialising: one async-mutex per key while someone holds or waits for it. */
import { Mutex } from 'async-mutex';

/** Runs work for the same key one at a time, in call order; different keys run side by side. */
export class KeyedMutex {
  private readonly entries = new Map<string, { mutex: Mutex; users: number }>();

  /** Someone holds or waits for `key`. */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Runs fn once no earlier call for `key` is running; its failure goes to this caller only. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { mutex: new Mutex(), users: 0 };
      this.entries.set(key, entry);
    }
    entry.users++;
    try {
      return await entry.mutex.runExclusive(fn);
    } finally {
      if (--entry.users === 0) this.entries.delete(key);
    }
  }
}
