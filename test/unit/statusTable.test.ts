import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  describeStatus,
  isFailure,
  isPending,
  isWarning,
  statusInfo,
  statusLabel,
  statusText,
} from '../../src/domain/statusTable.js';
import { retrieveOutcome } from '../../src/db/retrieveEntities.js';
import { rejectText, rejectionCodes } from '../../src/dimse/rejectTable.js';

test('one code means what its service says: A900 and B000 differ between C-STORE, C-FIND and C-MOVE', () => {
  assert.equal(statusText(0xa900, 'C-STORE'), 'data set does not match SOP class');
  assert.equal(statusText(0xa900, 'C-FIND'), 'identifier does not match SOP class');
  assert.deepEqual(statusInfo(0xb000, 'C-MOVE'), {
    category: 'warning',
    text: 'sub-operations complete with failures',
  });
  assert.deepEqual(statusInfo(0xb000, 'C-STORE'), { category: 'warning', text: 'coercion of data elements' });
  assert.equal(describeStatus(0xa801, 'C-MOVE'), '0xA801 move destination unknown');
  assert.equal(describeStatus(0x0112), '0x0112 no such object instance');
});

test('categories: success, pending (FF00, FF01), cancel, warning, failure; codes outside the tables by range', () => {
  assert.equal(statusInfo(0).category, 'success');
  assert.ok(isPending(0xff00) && isPending(0xff01, 'C-FIND'));
  assert.equal(statusInfo(0xfe00).category, 'cancel');
  assert.ok(isFailure(0xfe00), 'a cancelled operation did not succeed');
  assert.ok(isWarning(0x0001) && isWarning(0xb123, 'C-STORE'));
  assert.deepEqual(statusInfo(0xa7ff, 'C-STORE'), { category: 'failure', text: 'out of resources' });
  assert.deepEqual(statusInfo(0xc123, 'C-STORE'), { category: 'failure', text: 'cannot understand' });
  assert.deepEqual(statusInfo(0xc123, 'C-MOVE'), { category: 'failure', text: 'unable to process' });
  assert.deepEqual(statusInfo(0x0999), { category: 'failure', text: 'failed' });
  assert.ok(!isFailure(0) && !isFailure(0xff00) && !isFailure(0xb000, 'C-MOVE'));
});

test('metric labels are 4 lower-case hex digits', () => {
  assert.equal(statusLabel(0xa700), 'a700');
  assert.equal(statusLabel(0x0110), '0110');
});

test('the A-ASSOCIATE-RJ table: what we send per kind, and any peer rejection in words', () => {
  assert.deepEqual(rejectionCodes({ kind: 'local-limit-exceeded' }), { result: 2, source: 3, reason: 2 });
  assert.deepEqual(rejectionCodes({ kind: 'called-ae-not-recognized' }), { result: 1, source: 1, reason: 7 });
  assert.equal(rejectText(1, 1, 7), 'permanent, called AE title not recognized');
  assert.equal(rejectText(2, 3, 1), 'transient, temporary congestion');
  assert.equal(rejectText(2, 3, 2), 'transient, local limit exceeded');
  assert.equal(rejectText(1, 2, 2), 'permanent, protocol version not supported');
  assert.equal(rejectText(3, 1, 9), 'result 3, unknown reason');
});

test('a retrieve attempt is failed, partial or ok: one definition for the reconciler and the metrics', () => {
  const ok = { status: 0, error: null, failed: 0, completed: 4, requested: 4 };
  assert.equal(retrieveOutcome(ok), 'ok');
  assert.equal(retrieveOutcome({ ...ok, failed: null }), 'ok');
  assert.equal(retrieveOutcome({ ...ok, status: 0xa801 }), 'failed', 'refused');
  assert.equal(retrieveOutcome({ ...ok, status: null, error: 'connect ECONNREFUSED' }), 'failed');
  assert.equal(retrieveOutcome({ ...ok, completed: 0 }), 'failed', 'nothing came of it');
  assert.equal(retrieveOutcome({ ...ok, status: 0xb000, failed: 1, completed: 3 }), 'partial');
  assert.equal(retrieveOutcome({ ...ok, failed: 2 }), 'partial');
});
