import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { ScanRow } from '../../src/db/scanEntities.js';
import type { ScanSummary } from '../../src/pipeline/completion.js';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { startTestNode } from '../helpers/node.js';
import { needPeer, storeAll } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-grouping-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function scanFor(study: string, patientId: string): ScanRow {
  const now = new Date();
  return {
    id: randomUUID(),
    studyInstanceUid: study,
    accessionNumber: null,
    patientId,
    studyDate: '20261123',
    mppsUid: null,
    state: 'active',
    source: 'file',
    fileName: null,
    reason: null,
    requestedAt: now,
    updatedAt: now,
    completedAt: null,
  } as ScanRow;
}

/**
 * Two studies of one patient with the same Modality / StudyDate / StudyTime (generateStudy writes MR, 20261123,
 * 101500) but different StudyInstanceUIDs, sent with storescu and completed: one group under 'nidb', none under 'uid'.
 */
for (const kind of DB_KINDS) {
  describe(`grouping (${kind})`, () => {
    for (const grouping of ['nidb', 'uid'] as const) {
      test(`two StudyInstanceUIDs, same PatientID / Modality / StudyDate / StudyTime, grouping '${grouping}'`, async (t) => {
        if (!needPeer(t, 'storescu') || !(await needDb(t, kind))) return;
        const node = await startTestNode({ kind, extra: { completion: { grouping } } });
        try {
          const patientId = `GRP-${randomUUID().slice(0, 8)}`;
          const a = generateStudy({ dir: path.join(tmp, randomUUID()), patientId, series: 2, perSeries: 2 });
          const b = generateStudy({ dir: path.join(tmp, randomUUID()), patientId, series: 2, perSeries: 2 });
          await storeAll(node, [...a, ...b]);
          await waitFor('8 instances', async () => (await node.instances()).length === 8);
          const completion = node.node.completion;
          const summaries: ScanSummary[] = [];
          for (const s of [a[0]!.studyInstanceUid, b[0]!.studyInstanceUid]) {
            summaries.push(
              await completion.complete(scanFor(s, patientId), {
                state: 'finished',
                mppsStatus: null,
                expected: new Map(),
              }),
            );
          }
          const db = node.node.db;
          const studies = await db.source.getRepository(db.entities.Study).find({ where: { patientId } });
          const series = await db.source
            .getRepository(db.entities.Series)
            .find({ where: studies.map((s) => ({ studyInstanceUid: s.studyInstanceUid })) });
          assert.equal(studies.length, 2);
          assert.equal(series.length, 4);
          // The archive layout stays by UID.
          for (const s of [a, b]) {
            assert.equal(fs.readdirSync(path.join(node.dataDir, 'site', 'raw', s[0]!.studyInstanceUid)).length, 2);
          }
          const onDisk = [a, b].map(
            (s) =>
              JSON.parse(
                fs.readFileSync(path.join(node.dataDir, 'finished-scans', `${s[0]!.studyInstanceUid}.json`), 'utf8'),
              ) as ScanSummary,
          );
          if (grouping === 'nidb') {
            const key = `${patientId}|MR|20261123|101500`;
            assert.deepEqual(new Set(studies.map((s) => s.groupKey)), new Set([key]));
            assert.deepEqual(new Set(series.map((s) => s.groupKey)).size, 2, 'series 1 and 2: two series groups');
            assert.deepEqual(new Set(series.map((s) => s.groupKey)), new Set([`${key}|1`, `${key}|2`]));
            for (const s of [...summaries, ...onDisk]) assert.deepEqual(s.group, { subject: patientId, studyKey: key });
          } else {
            assert.deepEqual(
              studies.map((s) => s.groupKey ?? null),
              [null, null],
            );
            for (const s of [...summaries, ...onDisk]) assert.equal(s.group, undefined);
            // Under 'uid' the two studies stay two (their UIDs).
            assert.equal(new Set(studies.map((s) => s.studyInstanceUid)).size, 2);
          }
        } finally {
          await node.destroy();
        }
      });
    }
  });
}
