import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardBackoffMs, forwardTargets, seriesSelected } from '../../src/domain/forwardRules.js';
import { judgeCommitment, readCommitmentResult } from '../../src/domain/commitmentReport.js';

test('forward rules: when, modality and from select the destinations, each once; the first rule sets the filter', () => {
  const rules = [
    { to: ['pacs'], when: 'finished' as const, seriesDescription: '^T1' },
    { to: ['xnat', 'pacs'], when: 'both' as const, modality: ['MR'] },
    { to: ['ct-archive'], when: 'finished' as const, modality: ['CT'] },
    { to: ['lab'], when: 'failed' as const, from: ['scanner2'] },
  ];
  assert.deepEqual(forwardTargets(rules, 'finished', ['MR'], 'scanner'), [
    { destination: 'pacs', seriesFilter: '^T1' },
    { destination: 'xnat' },
  ]);
  assert.deepEqual(forwardTargets(rules, 'failed', ['MR'], 'scanner'), [
    { destination: 'xnat' },
    { destination: 'pacs' },
  ]);
  assert.deepEqual(
    forwardTargets(rules, 'failed', ['CT'], 'scanner2').map((t) => t.destination),
    ['lab'],
    'a failed CT scan from scanner2 goes to the lab only',
  );
  assert.deepEqual(forwardTargets(rules, 'failed', ['CT'], 'scanner'), []);
  assert.ok(seriesSelected('^T1', 'T1 MPRAGE') && !seriesSelected('^T1', 'fMRI rest') && seriesSelected(null, null));
  assert.deepEqual(
    [1, 2, 3, 20].map((a) => forwardBackoffMs(a, 1000)),
    [1000, 2000, 4000, 3_600_000],
  );
});

test('a storage commitment report is complete only when every instance sent is committed and none failed', () => {
  const sent = ['1.1', '1.2', '1.3'];
  const all = readCommitmentResult({
    TransactionUID: '2.25.7',
    ReferencedSOPSequence: sent.map((u) => ({
      ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
      ReferencedSOPInstanceUID: u,
    })),
  });
  assert.equal(all.transactionUid, '2.25.7');
  assert.deepEqual(judgeCommitment(sent, all), { complete: true, committed: 3 });
  const some = readCommitmentResult({
    TransactionUID: '2.25.7',
    ReferencedSOPSequence: [{ ReferencedSOPInstanceUID: '1.1' }],
    FailedSOPSequence: [{ ReferencedSOPInstanceUID: '1.2', FailureReason: 0x0112 }],
  });
  const v = judgeCommitment(sent, some);
  assert.equal(v.complete, false);
  assert.equal(v.committed, 1);
  assert.match(v.error!, /did not commit 2 of 3 \(1\.2: 0x0112 no such object instance\)/);
  assert.match(judgeCommitment(sent, readCommitmentResult({})).error!, /not listed as committed/);
});
