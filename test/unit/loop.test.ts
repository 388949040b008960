import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Loop, type LoopTimers } from '../../src/scheduler/loop.js';

/** A run the test ends by hand. */
function controlledRuns() {
  const args: number[] = [];
  const ends: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  return {
    args,
    run: (arg: number) =>
      new Promise<void>((resolve, reject) => {
        args.push(arg);
        ends.push({ resolve, reject });
      }),
    finish: () => ends.shift()!.resolve(),
    fail: (err: Error) => ends.shift()!.reject(err),
  };
}

/** setInterval by hand: the test fires the period. */
function manualTimers() {
  const live = new Map<number, () => void>();
  let next = 1;
  const timers: LoopTimers = {
    setInterval: (fn) => (live.set(next, fn), next++),
    clearInterval: (h) => void live.delete(h as number),
  };
  return {
    timers,
    fire: () => [...live.values()].forEach((fn) => fn()),
    get live() {
      return live.size;
    },
  };
}

/** Lets promise callbacks settle; no timer is involved. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

describe('Loop', () => {
  test('notify runs at once; notifications during a run ask for exactly one run after it', async () => {
    const r = controlledRuns();
    const loop = new Loop<number>({ run: r.run, onError: () => assert.fail('no error') });
    void loop.notify(1);
    await settle();
    assert.deepEqual(r.args, [1]);
    assert.equal(loop.running, true);
    const later = [loop.notify(2), loop.notify(3), loop.notify(4)];
    await settle();
    assert.deepEqual(r.args, [1], 'never two at once');
    r.finish();
    await settle();
    assert.deepEqual(r.args, [1, 2], 'one follow-up, with the argument that asked first');
    r.finish();
    await Promise.all(later);
    await settle();
    assert.deepEqual(r.args, [1, 2], 'and only one');
    assert.equal(loop.running, false);
  });

  test('merge folds the arguments of the notifications into the queued run', async () => {
    const r = controlledRuns();
    const loop = new Loop<number>({ run: r.run, onError: () => undefined, merge: (a, b) => Math.max(a, b) });
    void loop.notify(1);
    await settle();
    void loop.notify(2);
    void loop.notify(7);
    void loop.notify(3);
    r.finish();
    await settle();
    assert.deepEqual(r.args, [1, 7]);
    r.finish();
  });

  test('a failed run goes to onError and the loop goes on; notify never rejects', async () => {
    const r = controlledRuns();
    const errors: unknown[] = [];
    const loop = new Loop<number>({ run: r.run, onError: (e) => errors.push(e) });
    const first = loop.notify(1);
    await settle();
    r.fail(new Error('boom'));
    await first;
    assert.equal((errors[0] as Error).message, 'boom');
    const second = loop.notify(2);
    await settle();
    r.finish();
    await second;
    assert.deepEqual(r.args, [1, 2]);
  });

  test('the period notifies with its argument; start twice sets one timer', async () => {
    const r = controlledRuns();
    const t = manualTimers();
    const loop = new Loop<number>({
      run: r.run,
      onError: () => undefined,
      every: { ms: 1000, arg: 9 },
      timers: t.timers,
    });
    loop.start();
    loop.start();
    assert.equal(t.live, 1);
    t.fire();
    await settle();
    assert.deepEqual(r.args, [9]);
    t.fire();
    t.fire();
    r.finish();
    await settle();
    assert.deepEqual(r.args, [9, 9], 'ticks during a run fold into one');
    r.finish();
    await loop.stop();
    assert.equal(t.live, 0, 'stop clears the period');
  });

  test('stop drops the queued run, waits for the one in flight, and nothing runs after it', async () => {
    const r = controlledRuns();
    const loop = new Loop<number>({ run: r.run, onError: () => undefined });
    void loop.notify(1);
    await settle();
    const queued = loop.notify(2);
    let stopped = false;
    const stopping = loop.stop().then(() => (stopped = true));
    await settle();
    assert.equal(stopped, false, 'waits for the run in flight');
    r.finish();
    await stopping;
    await queued;
    assert.deepEqual(r.args, [1], 'the queued run was dropped');
    await loop.notify(3);
    await loop.stop();
    assert.deepEqual(r.args, [1]);
  });

  test('dropQueued forgets the run asked for; pending and current tell the state', async () => {
    const r = controlledRuns();
    const loop = new Loop<number>({ run: r.run, onError: () => undefined });
    void loop.notify(1);
    await settle();
    assert.ok(loop.current);
    void loop.notify(2);
    assert.equal(loop.pending, true);
    loop.dropQueued();
    assert.equal(loop.pending, false);
    r.finish();
    await settle();
    assert.deepEqual(r.args, [1]);
    assert.equal(loop.current, undefined);
  });
});
