import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyedMutex } from '../../src/scheduler/keyedMutex.js';

test('KeyedMutex: one key runs in call order, other keys side by side, a failure stays with its caller', async () => {
  const locks = new KeyedMutex();
  const log: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const a1 = locks.run('a', async () => (log.push('a1'), await gate, log.push('a1 end')));
  const a2 = locks.run('a', () => Promise.reject(new Error('a2 failed')));
  const a3 = locks.run('a', async () => void log.push('a3'));
  const b1 = locks.run('b', async () => void log.push('b1'));
  await b1;
  assert.deepEqual(log, ['a1', 'b1']);
  assert.equal(locks.has('a'), true);
  release();
  await a1;
  await assert.rejects(a2, /a2 failed/);
  await a3;
  assert.deepEqual(log, ['a1', 'b1', 'a1 end', 'a3']);
  assert.equal(locks.has('a'), false, 'an idle key is forgotten');
});
