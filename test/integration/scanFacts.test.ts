import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadScanFacts } from '../../src/db/scanFacts.js';
import { insertExpected, insertScan } from '../../src/db/scanStore.js';
import { insertInstanceBatch, indexRows } from '../../src/db/instanceIndex.js';
import { insertMppsStep } from '../../src/db/mppsStore.js';
import { insertRetrieveAttempt } from '../../src/db/retrieveStore.js';
import type { ScanRow } from '../../src/db/scanEntities.js';
import { DB_KINDS, needDb, openTestDatabase } from '../helpers/db.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-facts-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const T0 = new Date('2026-11-25T08:00:00Z');
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000);
const attrs = { text: () => undefined, int: () => undefined, json: '{}' };

for (const kind of DB_KINDS) {
  describe(`loadScanFacts on ${kind}`, () => {
    test('one snapshot: expected per series, what is here, MPPS state, last activity, retrieve history', async (t) => {
      if (!(await needDb(t, kind))) return;
      const { db, done } = await openTestDatabase(kind);
      t.after(done);
      const scan: ScanRow = {
        id: 'scan-1',
        studyInstanceUid: '1.2.3',
        accessionNumber: 'ACC1',
        patientId: 'P1',
        studyDate: null,
        mppsUid: '1.2.9',
        state: 'active',
        source: 'mpps',
        fileName: null,
        reason: null,
        requestedAt: T0,
        updatedAt: T0,
        completedAt: null,
      };
      await insertScan(db, scan);
      await insertExpected(db, [
        {
          scanId: scan.id,
          sopInstanceUid: '1.2.3.1.1',
          seriesInstanceUid: '1.2.3.1',
          sopClassUid: null,
          mppsUid: null,
        },
        {
          scanId: scan.id,
          sopInstanceUid: '1.2.3.1.2',
          seriesInstanceUid: '1.2.3.1',
          sopClassUid: null,
          mppsUid: null,
        },
        {
          scanId: scan.id,
          sopInstanceUid: '1.2.3.2.1',
          seriesInstanceUid: '1.2.3.2',
          sopClassUid: null,
          mppsUid: null,
        },
      ]);
      let facts = await loadScanFacts(db, scan);
      assert.deepEqual([...facts.expected.keys()].sort(), ['1.2.3.1', '1.2.3.2']);
      assert.equal(facts.expected.get('1.2.3.1')?.sopInstanceUids.length, 2);
      assert.equal(facts.received.size, 0);
      assert.equal(facts.mppsStatus, null);
      assert.equal(facts.lastActivity.getTime(), T0.getTime(), 'nothing but the request yet');

      const file = (sop: string, series: string) => ({
        sop,
        sopClass: '1.2.840.10008.5.1.4.1.1.4',
        study: '1.2.3',
        series,
        path: `incoming/${sop}.dcm`,
        size: 10,
        transferSyntaxUid: '1.2.840.10008.1.2.1',
        state: 'spooled' as const,
        source: 'dimse' as const,
        callingAe: 'MR',
      });
      const one = indexRows(attrs, file('1.2.3.1.1', '1.2.3.1'), at(5));
      const two = indexRows(attrs, file('1.2.3.2.1', '1.2.3.2'), at(7));
      await insertInstanceBatch(db, [one.groups, two.groups], [one.row, two.row]);
      const step = {
        sopInstanceUid: '1.2.9',
        status: 'COMPLETED' as const,
        scanId: scan.id,
        studyInstanceUid: '1.2.3',
        accessionNumber: null,
        patientId: null,
        callingAe: 'MR',
        startDate: null,
        startTime: null,
        endDate: null,
        endTime: null,
        createdAt: at(1),
        updatedAt: at(9),
        endedAt: at(9),
        dataset: '{}',
      };
      const event = {
        id: 'e1',
        mppsUid: '1.2.9',
        action: 'N-CREATE' as const,
        statusBefore: null,
        statusAfter: 'COMPLETED',
        callingAe: 'MR',
        at: at(9),
        dataset: '{}',
      };
      await insertMppsStep(db, step, event);
      const attempt = {
        id: 'a1',
        scanId: scan.id,
        studyInstanceUid: '1.2.3',
        seriesInstanceUid: '1.2.3.1',
        level: 'IMAGE' as const,
        requested: 1,
        completed: 0,
        failed: 1,
        warning: 0,
        remaining: 0,
        status: 0xa702,
        error: 'x'.repeat(600),
        startedAt: at(10),
        endedAt: at(11),
      };
      const stored = await insertRetrieveAttempt(db, attempt);
      assert.equal(stored.error?.length, 512, 'the error is cut to its column');

      facts = await loadScanFacts(db, scan);
      assert.deepEqual([...facts.received.entries()].map(([k, v]) => [k, [...v]]).sort(), [
        ['1.2.3.1', ['1.2.3.1.1']],
        ['1.2.3.2', ['1.2.3.2.1']],
      ]);
      assert.equal(facts.mppsStatus, 'COMPLETED');
      assert.equal(facts.lastInstance?.getTime(), at(7).getTime());
      assert.equal(facts.lastMpps?.getTime(), at(9).getTime());
      assert.equal(facts.lastActivity.getTime(), at(9).getTime(), 'the latest of request, image and MPPS');
      const a = facts.attempts.get('1.2.3.1');
      assert.deepEqual([a?.attempts, a?.lastStatus, a?.lastFailed], [1, 0xa702, true]);
    });
  });
}
