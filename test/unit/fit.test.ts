import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dialectOf, entities } from '../../src/db/entities.js';
import { fitRow, widthOf } from '../../src/db/fit.js';

const { Patient, Study } = entities(dialectOf('sqlite'));

test('fitRow cuts each varchar to the width its entity declares and leaves the rest', () => {
  const row = fitRow(Patient, { patientId: 'P'.repeat(70), patientName: 'N'.repeat(400), sex: 'M', birthDate: null });
  assert.equal(row.patientId.length, 64);
  assert.equal(row.patientName?.length, 324);
  assert.equal(row.sex, 'M');
  assert.equal(row.birthDate, null);
});

test('widthOf reads the declared width and refuses a column without one', () => {
  assert.equal(widthOf(Study, 'studyDescription'), 128);
  assert.throws(() => widthOf(Study, 'createdAt'), /no declared width/);
});
