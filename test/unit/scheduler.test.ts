import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { fakeLog } from '../helpers/log.js';
import { Scheduler, type RunReason, type SchedulerOptions } from '../../src/scheduler/scheduler.js';

/** A job whose runs the test ends one by one. */
function controlledJob() {
  const calls: RunReason[] = [];
  const pending: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  const job = (reason: RunReason) =>
    new Promise<void>((resolve, reject) => {
      calls.push(reason);
      pending.push({ resolve, reject });
    });
  const next = () => {
    const p = pending.shift();
    assert.ok(p, 'a run is going');
    return p;
  };
  return {
    job,
    calls,
    finish: () => next().resolve(),
    fail: (err: Error) => next().reject(err),
    get going() {
      return pending.length;
    },
  };
}

/** Stands in for node-cron: the test fires the ticks. */
function fakeCron() {
  let fn: (() => void) | undefined;
  let stopped = 0;
  return {
    schedule: (_expr: string, f: () => void) => {
      fn = f;
      return { stop: () => void stopped++ };
    },
    tick: () => {
      assert.ok(fn, 'scheduled');
      fn();
    },
    get stopped() {
      return stopped;
    },
  };
}

/** Lets the scheduler's promise chains (pause check, run end, follow-up) settle. setImmediate is not mocked. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

function setup(extra: Partial<SchedulerOptions> = {}) {
  const cron = fakeCron();
  const job = controlledJob();
  const { log, lines } = fakeLog();
  let clock = Date.parse('2026-11-23T10:00:00Z');
  const scheduler = new Scheduler({
    cron: '*/15 * * * * *',
    enabled: true,
    job: job.job,
    log,
    schedule: cron.schedule,
    now: () => new Date(clock),
    ...extra,
  });
  scheduler.start();
  return {
    scheduler,
    cron,
    job,
    lines,
    advanceClock: (ms: number) => (clock += ms),
  };
}

describe('Scheduler', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  test('a tick while a run is going is skipped, counted and logged once with how long the run has gone', async () => {
    const { scheduler, cron, job, lines, advanceClock } = setup();
    cron.tick();
    await settle();
    assert.deepEqual(job.calls, ['tick']);
    assert.equal(scheduler.state.running, true);
    advanceClock(42_000);
    cron.tick();
    await settle();
    assert.equal(job.calls.length, 1, 'no second run while the first is going');
    assert.equal(scheduler.state.skipped, 1);
    const warns = lines.filter((l) => l.level === 'warn');
    assert.equal(warns.length, 1);
    assert.match(warns[0]!.message, /skipped.*42\.0 s/);
    job.finish();
    await settle();
    assert.equal(scheduler.state.running, false);
    assert.equal(job.calls.length, 1, 'a skipped tick is not run later');
    cron.tick();
    await settle();
    assert.equal(job.calls.length, 2, 'the next tick after the run runs');
    job.finish();
    await settle();
    assert.equal(scheduler.state.runs, 2);
    assert.equal(scheduler.state.lastRunMs, 0);
  });

  test('triggerWhenQuiet: a stream of events runs once, quietMs after it pauses', async () => {
    const { scheduler, job } = setup({ debounceMs: 200, quietMs: 250 });
    for (let i = 0; i < 100; i++) {
      scheduler.triggerWhenQuiet();
      mock.timers.tick(20);
    }
    await settle();
    assert.equal(job.calls.length, 0, 'no run while the stream goes on (2 s of events 20 ms apart)');
    mock.timers.tick(220);
    await settle();
    assert.equal(job.calls.length, 0, 'not before the pause is quietMs long');
    mock.timers.tick(10); // 250 ms after the last event, with no debounce window on top
    await settle();
    assert.deepEqual(job.calls, ['trigger']);
    job.finish();
    await settle();
    scheduler.triggerWhenQuiet();
    await scheduler.stop();
    mock.timers.tick(1000);
    await settle();
    assert.equal(job.calls.length, 1, 'stop cancels a pending quiet trigger');
  });

  test('triggerNow: runs at once, drops the pending debounce and quiet triggers, one follow-up during a run', async () => {
    const { scheduler, job } = setup({ debounceMs: 60_000, quietMs: 60_000 });
    scheduler.trigger();
    scheduler.triggerWhenQuiet();
    scheduler.triggerNow();
    await settle();
    assert.deepEqual(job.calls, ['trigger'], 'no timer advanced: no debounce or quiet window');
    scheduler.triggerNow();
    scheduler.triggerNow();
    job.finish();
    await settle();
    assert.deepEqual(job.calls, ['trigger', 'trigger'], 'one follow-up');
    job.finish();
    mock.timers.tick(120_000);
    await settle();
    assert.equal(job.calls.length, 2, 'the dropped debounce and quiet triggers never fire');
  });

  test('a burst of 10 triggers becomes one run within debounceMs', async () => {
    const { scheduler, job } = setup({ debounceMs: 200 });
    for (let i = 0; i < 10; i++) {
      scheduler.trigger();
      mock.timers.tick(10);
    }
    await settle();
    assert.equal(job.calls.length, 0, 'not before the debounce window closes');
    mock.timers.tick(100); // 200 ms after the first trigger
    await settle();
    assert.deepEqual(job.calls, ['trigger']);
    job.finish();
    mock.timers.tick(1000);
    await settle();
    assert.equal(job.calls.length, 1);
    assert.equal(scheduler.state.runs, 1);
  });

  test('triggers during a run ask for exactly one follow-up run after it', async () => {
    const { scheduler, cron, job } = setup();
    cron.tick();
    await settle();
    for (let i = 0; i < 5; i++) scheduler.trigger();
    mock.timers.tick(1000);
    await settle();
    assert.equal(job.calls.length, 1, 'no run while one is going');
    job.finish();
    await settle();
    assert.deepEqual(job.calls, ['tick', 'trigger'], 'one follow-up');
    job.finish();
    mock.timers.tick(1000);
    await settle();
    assert.equal(job.calls.length, 2, 'and only one');
    assert.equal(scheduler.state.running, false);
  });

  test('a trigger whose debounce ends during a tick run also gets its follow-up', async () => {
    const { scheduler, cron, job } = setup();
    scheduler.trigger();
    cron.tick();
    await settle();
    mock.timers.tick(200);
    await settle();
    assert.equal(job.calls.length, 1);
    job.finish();
    await settle();
    assert.deepEqual(job.calls, ['tick', 'trigger']);
    job.finish();
    await settle();
  });

  test('pause() stops ticks and triggers, resume() restores them; each change is logged once', async () => {
    const { scheduler, cron, job, lines } = setup();
    scheduler.pause();
    scheduler.pause();
    cron.tick();
    scheduler.trigger();
    mock.timers.tick(1000);
    await settle();
    cron.tick();
    await settle();
    assert.equal(job.calls.length, 0);
    assert.equal(scheduler.state.paused, true);
    scheduler.resume();
    assert.equal(scheduler.state.paused, false);
    cron.tick();
    await settle();
    assert.deepEqual(job.calls, ['tick']);
    job.finish();
    await settle();
    const info = lines.filter((l) => /scheduler (paused|resumed)/.test(l.message)).map((l) => l.message);
    assert.deepEqual(info, ['scheduler paused (by pause())', 'scheduler resumed (by resume())']);
  });

  test('pause() drops a trigger still in its debounce window', async () => {
    const { scheduler, job } = setup();
    scheduler.trigger();
    scheduler.pause();
    mock.timers.tick(1000);
    await settle();
    assert.equal(job.calls.length, 0);
  });

  test('enabled: false starts paused', async () => {
    const { scheduler, cron, job } = setup({ enabled: false });
    assert.equal(scheduler.state.paused, true);
    cron.tick();
    await settle();
    assert.equal(job.calls.length, 0);
    scheduler.resume();
    cron.tick();
    await settle();
    assert.equal(job.calls.length, 1);
    job.finish();
    await settle();
  });

  test('the isPaused flag is read on every tick: pause and resume without a restart, logged once per change', async () => {
    let flag = false;
    const { scheduler, cron, job, lines } = setup({ isPaused: () => Promise.resolve(flag) });
    flag = true;
    for (let i = 0; i < 3; i++) {
      cron.tick();
      await settle();
    }
    scheduler.trigger();
    mock.timers.tick(1000);
    await settle();
    assert.equal(job.calls.length, 0);
    assert.equal(scheduler.state.paused, true);
    flag = false;
    cron.tick();
    await settle();
    assert.equal(job.calls.length, 1);
    job.finish();
    await settle();
    const changes = lines.filter((l) => /scheduler (paused|resumed)/.test(l.message)).map((l) => l.message);
    assert.deepEqual(changes, ['scheduler paused (by pause flag)', 'scheduler resumed (by pause flag)']);
  });

  test('a pause flag that cannot be read keeps the last known state and is logged once', async () => {
    const { scheduler, cron, job, lines } = setup({ isPaused: () => Promise.reject(new Error('database down')) });
    for (let i = 0; i < 3; i++) {
      cron.tick();
      await settle();
      job.finish();
      await settle();
    }
    assert.equal(scheduler.state.runs, 3);
    assert.equal(lines.filter((l) => /database down/.test(l.message)).length, 1);
  });

  test('stop() waits for the running job, stops the cron task, and no run starts after it', async () => {
    const { scheduler, cron, job } = setup();
    cron.tick();
    await settle();
    scheduler.trigger(); // would ask for a follow-up
    let stopped = false;
    const stopping = scheduler.stop().then(() => (stopped = true));
    await settle();
    assert.equal(stopped, false, 'still waiting for the job');
    assert.equal(cron.stopped, 1);
    job.finish();
    await stopping;
    assert.equal(stopped, true);
    cron.tick();
    scheduler.trigger();
    mock.timers.tick(1000);
    await scheduler.runNow();
    await settle();
    assert.equal(job.calls.length, 1, 'nothing ran after stop()');
    await scheduler.stop(); // safe twice
    assert.equal(cron.stopped, 1);
    assert.equal(scheduler.state.nextRunAt, undefined);
  });

  test('stop() cancels a trigger in its debounce window', async () => {
    const { scheduler, job } = setup();
    scheduler.trigger();
    await scheduler.stop();
    mock.timers.tick(1000);
    await settle();
    assert.equal(job.calls.length, 0);
  });

  test('a job that throws is logged, recorded in state, and the next tick runs', async () => {
    const { scheduler, cron, job, lines } = setup();
    cron.tick();
    await settle();
    job.fail(new Error('scanner said no'));
    await settle();
    assert.equal(scheduler.state.lastError, 'scanner said no');
    assert.equal(scheduler.state.running, false);
    const errors = lines.filter((l) => l.level === 'error');
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /scanner said no/);
    cron.tick();
    await settle();
    assert.equal(job.calls.length, 2);
    job.finish();
    await settle();
    assert.equal(scheduler.state.lastError, undefined, 'a good run clears it');
    assert.equal(scheduler.state.runs, 2);
  });

  test('runNow() runs once, or waits for the run that is going', async () => {
    const { scheduler, cron, job } = setup();
    let done = false;
    const first = scheduler.runNow().then(() => (done = true));
    await settle();
    assert.deepEqual(job.calls, ['trigger']);
    const second = scheduler.runNow();
    cron.tick();
    await settle();
    assert.equal(job.calls.length, 1);
    assert.equal(done, false);
    job.finish();
    await Promise.all([first, second]);
    assert.equal(job.calls.length, 1);
    assert.ok(scheduler.state.lastRunAt instanceof Date);
  });
});

test('the real node-cron task fires every second, tells its next run, and stop() stops it', async () => {
  const { log } = fakeLog();
  const runs: number[] = [];
  const scheduler = new Scheduler({
    cron: '* * * * * *',
    enabled: true,
    log,
    job: () => {
      runs.push(Date.now());
      return Promise.resolve();
    },
  });
  scheduler.start();
  const next = scheduler.state.nextRunAt;
  assert.ok(next instanceof Date, 'node-cron tells the next run');
  assert.ok(next.getTime() - Date.now() <= 1000);
  const deadline = Date.now() + 2500;
  while (runs.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(runs.length >= 1, 'fired within 2.5 s');
  await scheduler.stop();
  const count = runs.length;
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(runs.length, count, 'no tick after stop()');
});
