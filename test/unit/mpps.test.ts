import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  applySet,
  checkCreate,
  checkSet,
  expectedInstances,
  referencedMppsUids,
  summarize,
  withEndDateTime,
} from '../../src/domain/mpps.js';
import { DimseError } from '../../src/domain/status.js';

const status = (fn: () => unknown): number => {
  try {
    fn();
  } catch (err) {
    if (err instanceof DimseError) return err.status;
    throw err;
  }
  return 0;
};

test('N-CREATE must be IN PROGRESS: 0106 names the attribute, 0120 when it is missing', () => {
  const never = () => assert.fail('no UID needed');
  assert.equal(checkCreate('1.2.3', { PerformedProcedureStepStatus: 'IN PROGRESS' }, never), '1.2.3');
  assert.equal(checkCreate('1.2.3', { PerformedProcedureStepStatus: 'in progress ' }, never), '1.2.3');
  assert.equal(
    status(() => checkCreate('1.2.3', { PerformedProcedureStepStatus: 'COMPLETED' }, never)),
    0x0106,
  );
  assert.throws(
    () => checkCreate('1.2.3', { PerformedProcedureStepStatus: 'COMPLETED' }, never),
    /PerformedProcedureStepStatus \(0040,0252\)/,
  );
  assert.equal(
    status(() => checkCreate('1.2.3', {}, never)),
    0x0120,
  );
  assert.equal(
    status(() => checkCreate('1.2.3', undefined, never)),
    0x0120,
  );
});

test('N-CREATE: an invalid SOP Instance UID is refused (0117), a missing one is assigned', () => {
  const ok = { PerformedProcedureStepStatus: 'IN PROGRESS' };
  assert.equal(
    status(() => checkCreate('../etc/passwd', ok, () => '1')),
    0x0117,
  );
  assert.equal(
    checkCreate(undefined, ok, () => '2.25.42'),
    '2.25.42',
  );
});

test('N-SET: 0112 unknown, 0110 once final, 0106 for an unknown status value', () => {
  assert.equal(
    status(() => checkSet(undefined, {})),
    0x0112,
  );
  assert.equal(
    status(() => checkSet('COMPLETED', {})),
    0x0110,
  );
  assert.equal(
    status(() => checkSet('DISCONTINUED', { PerformedProcedureStepStatus: 'IN PROGRESS' })),
    0x0110,
  );
  assert.equal(
    status(() => checkSet('IN PROGRESS', { PerformedProcedureStepStatus: 'DONE' })),
    0x0106,
  );
  assert.equal(checkSet('IN PROGRESS', {}), 'IN PROGRESS');
  assert.equal(checkSet('IN PROGRESS', { PerformedProcedureStepStatus: 'COMPLETED' }), 'COMPLETED');
  assert.equal(checkSet('IN PROGRESS', { PerformedProcedureStepStatus: ['DISCONTINUED'] }), 'DISCONTINUED');
});

test('N-SET replaces whole attributes, sequences included, and never the UIDs of the step', () => {
  const stored = {
    SOPInstanceUID: '1.2.3',
    PatientName: [{ Alphabetic: 'A^B' }],
    PerformedSeriesSequence: [{ SeriesInstanceUID: '1.1' }, { SeriesInstanceUID: '1.2' }],
  };
  const out = applySet(stored, { SOPInstanceUID: '9.9', PerformedSeriesSequence: [{ SeriesInstanceUID: '1.3' }] });
  assert.equal(out.SOPInstanceUID, '1.2.3');
  assert.deepEqual(out.PerformedSeriesSequence, [{ SeriesInstanceUID: '1.3' }]);
  assert.deepEqual(out.PatientName, [{ Alphabetic: 'A^B' }]);
  assert.equal(stored.PerformedSeriesSequence.length, 2, 'the stored data set is not changed in place');
});

test('a final state gets its end date and time; the scanner values win', () => {
  const at = new Date(2026, 10, 23, 9, 5, 7);
  assert.deepEqual(withEndDateTime({}, 'IN PROGRESS', at), {});
  assert.deepEqual(withEndDateTime({}, 'COMPLETED', at), {
    PerformedProcedureStepEndDate: '20261123',
    PerformedProcedureStepEndTime: '090507',
  });
  const own = withEndDateTime(
    { PerformedProcedureStepEndDate: '20261122', PerformedProcedureStepEndTime: '235959' },
    'DISCONTINUED',
    at,
  );
  assert.equal(own.PerformedProcedureStepEndDate, '20261122');
  assert.equal(own.PerformedProcedureStepEndTime, '235959');
});

test('summary: study UIDs from the Scheduled Step Attributes Sequence, invalid or empty ones left out', () => {
  const s = summarize(
    {
      PatientID: 'P1',
      PatientName: [{ Alphabetic: 'Müller^Jörg' }],
      ScheduledStepAttributesSequence: [
        { StudyInstanceUID: '', AccessionNumber: '' },
        { StudyInstanceUID: '1.2.840.99\0', AccessionNumber: 'ACC9' },
        { StudyInstanceUID: '1.2.840.99' },
        { StudyInstanceUID: 'x.y' },
      ],
      PerformedProcedureStepStartDate: '20261123',
    },
    'IN PROGRESS',
  );
  assert.deepEqual(s.studyInstanceUids, ['1.2.840.99']);
  assert.equal(s.accessionNumber, 'ACC9');
  assert.equal(s.patientId, 'P1');
  assert.equal(s.patientName, 'Müller^Jörg');
  assert.equal(s.startDate, '20261123');
  assert.deepEqual(summarize({}, 'IN PROGRESS').studyInstanceUids, []);
});

test('expected instances: images and non-image objects per series, invalid UIDs counted, duplicates once', () => {
  const { series, skipped } = expectedInstances({
    PerformedSeriesSequence: [
      {
        SeriesInstanceUID: '1.2.1',
        SeriesDescription: 't1',
        ReferencedImageSequence: [
          { ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4', ReferencedSOPInstanceUID: '1.2.1.1' },
          { ReferencedSOPInstanceUID: '1.2.1.2' },
          { ReferencedSOPInstanceUID: '1.2.1.1' },
          { ReferencedSOPInstanceUID: 'bogus' },
        ],
        ReferencedNonImageCompositeSOPInstanceSequence: [{ ReferencedSOPInstanceUID: '1.2.1.9' }],
      },
      { SeriesInstanceUID: '1.2.2', ReferencedImageSequence: [], ReferencedNonImageCompositeSOPInstanceSequence: [] },
      { SeriesInstanceUID: 'not a uid', ReferencedImageSequence: [{ ReferencedSOPInstanceUID: '1.5' }] },
    ],
  });
  assert.equal(skipped, 2);
  assert.deepEqual(
    series.map((s) => [s.seriesInstanceUid, s.seriesDescription, s.instances.map((i) => i.sopInstanceUid)]),
    [
      ['1.2.1', 't1', ['1.2.1.1', '1.2.1.2', '1.2.1.9']],
      ['1.2.2', undefined, []],
    ],
  );
  assert.equal(series[0]!.instances[0]!.sopClassUid, '1.2.840.10008.5.1.4.1.1.4');
  assert.deepEqual(expectedInstances({}).series, []);
});

test("an image's Referenced Performed Procedure Step Sequence names its MPPS", () => {
  assert.deepEqual(
    referencedMppsUids({
      ReferencedPerformedProcedureStepSequence: [
        { ReferencedSOPClassUID: '1.2.840.10008.3.1.2.3.3', ReferencedSOPInstanceUID: '1.2.3.4' },
        { ReferencedSOPInstanceUID: '../x' },
      ],
    }),
    ['1.2.3.4'],
  );
  assert.deepEqual(referencedMppsUids({}), []);
});
