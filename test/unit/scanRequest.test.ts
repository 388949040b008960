import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  makeRequest,
  parseRequestFile,
  requestFileContent,
  requestFileName,
  type ScanRequestSpec,
} from '../../src/domain/scanRequest.js';

const spec = (r: ReturnType<typeof parseRequestFile>): ScanRequestSpec => {
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.spec;
};
const reason = (r: ReturnType<typeof parseRequestFile>): string => {
  assert.ok(!r.ok, 'expected a refusal');
  return r.reason;
};

test('an empty file named by a StudyInstanceUID is a request for that study (FIONA)', () => {
  assert.equal(spec(parseRequestFile('1.2.840.5', '')).studyInstanceUid, '1.2.840.5');
  assert.equal(spec(parseRequestFile('1.2.840.5.json', '\n')).studyInstanceUid, '1.2.840.5');
  assert.match(reason(parseRequestFile('hello.json', '')), /empty file/);
});

test('JSON names a study, an accession number or a patient, in the spellings people use', () => {
  assert.equal(spec(parseRequestFile('a.json', '{"studyInstanceUID":"1.2.3"}')).studyInstanceUid, '1.2.3');
  assert.equal(spec(parseRequestFile('a.json', '{"StudyInstanceUID":"1.2.3"}')).studyInstanceUid, '1.2.3');
  assert.equal(spec(parseRequestFile('a.json', '{"studyInstanceUid":"1.2.3"}')).studyInstanceUid, '1.2.3');
  const acc = spec(parseRequestFile('a.json', '{"accessionNumber":"A42"}'));
  assert.equal(acc.accessionNumber, 'A42');
  assert.equal(acc.studyInstanceUid, null);
  const pat = spec(parseRequestFile('p.json', '{"patientId":"P 1","studyDate":"20261123"}'));
  assert.deepEqual([pat.patientId, pat.studyDate], ['P 1', '20261123']);
  assert.equal(spec(parseRequestFile('1.2.3.json', '{"accessionNumber":"A1"}')).studyInstanceUid, '1.2.3');
});

test('what is refused, with the reason', () => {
  assert.match(reason(parseRequestFile('a.json', '{ nope')), /not valid JSON/);
  assert.match(reason(parseRequestFile('a.json', '[1]')), /not an object/);
  assert.match(reason(parseRequestFile('a.json', '{}')), /names none/);
  assert.match(reason(parseRequestFile('a.json', '{"studyInstanceUID":"1.02.3"}')), /not a valid UID/);
  assert.match(reason(parseRequestFile('a.json', '{"studyInstanceUID":"../../etc"}')), /not a valid UID/);
  assert.match(reason(parseRequestFile('a.json', '{"patientId":"P","studyDate":"2026-11-23"}')), /YYYYMMDD/);
  assert.match(reason(parseRequestFile('a.json', '{"accessionNumber":"A\\\\B"}')), /backslash/);
  assert.match(reason(parseRequestFile('a.json', '{"accessionNumber":"12345678901234567"}')), /longer than 16/);
  assert.match(reason(parseRequestFile('a.json', '{"accessionNumber":{"x":1}}')), /must be a string/);
  assert.match(reason(parseRequestFile('1.2.3.json', '{"studyInstanceUID":"1.2.4"}')), /named 1\.2\.3/);
  assert.match(reason(parseRequestFile('.hidden.json', '')), /not accepted/);
  assert.match(reason(parseRequestFile('a b.json', '')), /not accepted/);
  assert.match(reason(parseRequestFile('a.json', Buffer.alloc(70_000, 0x20))), /larger than/);
});

test('canonical file names, and the content scannode writes reads back as the same request', () => {
  const base = {
    studyInstanceUid: null,
    accessionNumber: null,
    patientId: null,
    studyDate: null,
    mppsSopInstanceUid: null,
  };
  assert.equal(requestFileName({ ...base, studyInstanceUid: '1.2.3' }), '1.2.3.json');
  assert.equal(requestFileName({ ...base, accessionNumber: 'A/1' }), 'accession-A_1.json');
  assert.equal(requestFileName({ ...base, patientId: 'P 1', studyDate: '20261123' }), 'patient-P_1-20261123.json');
  assert.equal(requestFileName({ ...base, mppsSopInstanceUid: '1.9' }), 'mpps-1.9.json');
  const written = { ...base, accessionNumber: 'A1', patientId: 'P1', mppsSopInstanceUid: '1.9' };
  const content = requestFileContent({
    ...written,
    state: 'active',
    source: 'mpps',
    requestedAt: new Date(0),
    mppsStatus: null,
  });
  assert.deepEqual(spec(parseRequestFile('accession-A1.json', content)), written);
  const r = makeRequest({ studyInstanceUid: ' 1.2.3 ' });
  assert.equal(spec(r).studyInstanceUid, '1.2.3');
});
