/**
 * The bookkeeping of the raw-socket robustness suite: one node child process for every case, its restart after a
 * death, the C-ECHO after each case, the check that a refused or abandoned store left nothing in incoming/ or the
 * archive, and the counts the suite prints (cases, deaths, hangs, accepted-bad, written-despite-failure).
 */
import fs from 'node:fs';
import path from 'node:path';
import { startNodeProcess, type NodeProcess } from './parrotNode.js';
import { echoProblem, trace, type Observed, type Timers } from './parrotRun.js';

export interface Counts {
  cases: number;
  deaths: number;
  hangs: number;
  acceptedBad: number;
  writtenDespiteFailure: number;
  /** Answered, but not as PS3.8 says (source / reason, a missing A-ABORT, a close instead of an answer). */
  wrongAnswer: number;
  /** A valid exchange (or one PS3.8 says must not be tested) that was refused. */
  refusedGood: number;
  /** The node was up but a fresh C-ECHO failed. */
  echoFailures: number;
}

export interface CaseReport {
  problems: string[];
}

export class EdgeSuite {
  node!: NodeProcess;
  readonly counts: Counts = {
    cases: 0,
    deaths: 0,
    hangs: 0,
    acceptedBad: 0,
    writtenDespiteFailure: 0,
    wrongAnswer: 0,
    refusedGood: 0,
    echoFailures: 0,
  };
  /** SOP Instance UIDs the node answered Success for (a file for each is expected). */
  readonly stored = new Set<string>();
  readonly deathLog: string[] = [];
  private restarting: Promise<void> | undefined;
  /** Incremented by every restart: a check that started before one does not restart again. */
  private generation = 0;

  constructor(
    readonly timers: Timers,
    readonly dicom: Record<string, unknown>,
  ) {}

  async start(): Promise<void> {
    this.node = await startNodeProcess({
      ...this.dicom,
      artimTimeoutSeconds: this.timers.artimMs / 1000,
      idleTimeoutSeconds: this.timers.idleMs / 1000,
    });
  }

  /** Restarts a dead node once, however many cases noticed; true when it had died. */
  async reviveIfDead(during: string): Promise<boolean> {
    if (this.restarting) {
      await this.restarting;
      return true;
    }
    if (this.node.alive()) return false;
    this.counts.deaths++;
    this.deathLog.push(`${during}: ${this.node.exitInfo()}\n${this.node.log().slice(-1500)}`);
    this.generation++;
    this.restarting = this.node.restart().finally(() => (this.restarting = undefined));
    await this.restarting;
    return true;
  }

  /**
   * A node that is up but answers nobody (its event loop stuck in a peer's data): a second C-ECHO decides; then it
   * is killed and restarted, and counted as a death, since for the scanners it is one.
   */
  async reviveIfWedged(during: string, why: string): Promise<boolean> {
    if (this.restarting) {
      await this.restarting;
      return true;
    }
    const generation = this.generation;
    const again = await echoProblem(this.node.port);
    if (!again || this.restarting || generation !== this.generation) return false;
    this.counts.deaths++;
    this.deathLog.push(`${during}: wedged (${why}; ${again})\n${this.node.log().slice(-1500)}`);
    this.generation++;
    this.restarting = this.node.restart().finally(() => (this.restarting = undefined));
    await this.restarting;
    return true;
  }

  /**
   * Everything checked after a case, given what it observed: liveness (process and a fresh C-ECHO), the timers, and
   * that stores without Success left nothing behind. `verdict` problems are counted by the caller's classification.
   */
  async afterCase(
    name: string,
    o: Observed | undefined,
    uids: string[],
    verdict: { acceptedBad?: string; wrong?: string; refusedGood?: string },
    error?: unknown,
  ): Promise<CaseReport> {
    this.counts.cases++;
    const problems: string[] = [];
    if (error) problems.push(`script error: ${String(error)}`);
    // A C-STORE-RSP Success: the case's store (and the UID the response names, if any) is expected on disk.
    for (const e of o?.events ?? [])
      if (e.kind === 'PDATA')
        for (const c of e.commands)
          if (c.status === 0 && c.commandField === 0x8001) {
            uids.forEach((u) => this.stored.add(u));
            if (c.affectedSopInstance) this.stored.add(c.affectedSopInstance);
          }
    if (o?.hang) {
      this.counts.hangs++;
      problems.push(`hang: nothing ended the connection ${o.endMs} ms after our last byte: ${trace(o)}`);
    }
    if (verdict.acceptedBad) {
      this.counts.acceptedBad++;
      problems.push(`accepted-bad: ${verdict.acceptedBad}`);
    }
    if (verdict.wrong) {
      this.counts.wrongAnswer++;
      problems.push(`wrong answer: ${verdict.wrong}`);
    }
    if (verdict.refusedGood) {
      this.counts.refusedGood++;
      problems.push(`refused a valid exchange: ${verdict.refusedGood}`);
    }
    if (await this.reviveIfDead(name)) problems.push('death: the node process died (restarted)');
    else {
      const echo = await echoProblem(this.node.port);
      if (echo) {
        this.counts.echoFailures++;
        problems.push(`C-ECHO from a fresh connection failed: ${echo}`);
        if (/TIMEOUT|cannot connect/.test(echo) && (await this.reviveIfWedged(name, echo)))
          problems.push('death: the node stopped answering (killed and restarted)');
      }
    }
    const written = await this.leftovers(uids);
    if (written.length) {
      this.counts.writtenDespiteFailure++;
      problems.push(`written despite failure: ${written.join(', ')}`);
    }
    return { problems };
  }

  /** Files of these stores that got no Success, once the node had a moment (3 s) to clean up after the close. */
  async leftovers(uids: string[]): Promise<string[]> {
    const failedUids = uids.filter((u) => !this.stored.has(u));
    if (failedUids.length === 0) return [];
    const find = () => this.node.storedFiles().filter((f) => failedUids.some((u) => path.basename(f).startsWith(u)));
    const deadline = Date.now() + 3000;
    let found = find();
    while (found.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      found = find();
    }
    return found;
  }

  /**
   * After every case: files in incoming/ or site/raw that are not a stored instance (a .part, a stray UID). An empty
   * file holds no instance (the spool may keep pre-created empty files ready): it is not counted.
   */
  async strays(): Promise<string[]> {
    const stray = () =>
      this.node.storedFiles().filter((f) => {
        const size = sizeOf(path.join(this.node.dataDir, f));
        if (!size) return false;
        const base = path.basename(f);
        return !(f.startsWith('incoming') && base.endsWith('.dcm') && this.stored.has(base.slice(0, -4)));
      });
    const deadline = Date.now() + 5000;
    let found = stray();
    while (found.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      found = stray();
    }
    return found;
  }

  summary(label: string): string {
    const c = this.counts;
    return (
      `${label}: cases ${c.cases}, deaths ${c.deaths}, hangs ${c.hangs}, accepted-bad ${c.acceptedBad}, ` +
      `written-despite-failure ${c.writtenDespiteFailure} (also: wrong answers ${c.wrongAnswer}, refused valid ` +
      `${c.refusedGood}, C-ECHO failures ${c.echoFailures})`
    );
  }
}

function sizeOf(file: string): number | undefined {
  try {
    return fs.statSync(file).size;
  } catch {
    return undefined; // gone meanwhile
  }
}
