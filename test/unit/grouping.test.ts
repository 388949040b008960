import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeStudyTime, seriesGroupKey, studyGroupKey } from '../../src/domain/grouping.js';

const base = { patientId: 'P1', modality: 'MR', studyDate: '20260101', studyTime: '101500' };

test('the same patient / modality / date / time from two StudyInstanceUIDs is one study key', () => {
  const a = studyGroupKey({ ...base, studyInstanceUid: '1.2.3' });
  const b = studyGroupKey({ ...base, studyInstanceUid: '1.2.4' });
  assert.equal(a.studyKey, b.studyKey);
  assert.equal(a.studyKey, 'P1|MR|20260101|101500');
  assert.equal(a.subject, 'P1');
});

test('a different StudyTime, date, modality or patient gives another study key', () => {
  const a = studyGroupKey({ ...base, studyInstanceUid: '1.2.3' }).studyKey;
  for (const diff of [{ studyTime: '101501' }, { studyDate: '20260102' }, { modality: 'CT' }, { patientId: 'P2' }]) {
    assert.notEqual(studyGroupKey({ ...base, ...diff, studyInstanceUid: '1.2.4' }).studyKey, a);
  }
});

test('StudyTime fractions and padding do not split a study; modality case is ignored', () => {
  assert.equal(normalizeStudyTime(' 101500.123456 '), '101500');
  assert.equal(normalizeStudyTime('10:15:00'), '101500');
  const a = studyGroupKey({ ...base, studyTime: '101500.5', modality: 'mr', studyInstanceUid: '1' }).studyKey;
  assert.equal(a, studyGroupKey({ ...base, studyInstanceUid: '2' }).studyKey);
});

test('missing values: the study keeps its own key by StudyInstanceUID (never merged)', () => {
  for (const missing of [{ patientId: '' }, { modality: null }, { studyDate: undefined }, { studyTime: '  ' }]) {
    const a = studyGroupKey({ ...base, ...missing, studyInstanceUid: '1.2.3' });
    const b = studyGroupKey({ ...base, ...missing, studyInstanceUid: '1.2.4' });
    assert.equal(a.studyKey, 'uid:1.2.3');
    assert.notEqual(a.studyKey, b.studyKey);
  }
  assert.equal(studyGroupKey({ ...base, patientId: null, studyInstanceUid: '9' }).subject, 'uid:9');
});

test('series: the same SeriesNumber in a study is one key; a missing one falls back to the UID', () => {
  assert.equal(seriesGroupKey('K', 3, '1.1'), seriesGroupKey('K', 3, '1.2'));
  assert.equal(seriesGroupKey('K', 3, '1.1'), 'K|3');
  assert.notEqual(seriesGroupKey('K', 3, '1.1'), seriesGroupKey('K', 4, '1.1'));
  assert.equal(seriesGroupKey('K', null, '1.1'), 'K|uid:1.1');
  assert.notEqual(seriesGroupKey('K', null, '1.1'), seriesGroupKey('K', null, '1.2'));
});
