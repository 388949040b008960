import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ScannerSending } from '../../src/pipeline/scannerSending.js';
import { AwaitedImages } from '../../src/pipeline/awaitedImages.js';

const assoc = (id: string, callingAe: string) => ({
  id,
  callingAe,
  calledAe: 'SCANNODE',
  remoteAddress: '127.0.0.1',
  remotePort: 4000,
});

describe('ScannerSending', () => {
  test("the scanner's open association that stored images of a study is sending it until it closes", () => {
    const stopped: string[][] = [];
    const s = new ScannerSending('SCANNER', (studies) => stopped.push(studies));
    const a = assoc('a1', 'SCANNER ');
    s.storeOpened({ association: a, sopInstanceUid: '1.2.1' });
    assert.equal(s.isSending('1.2'), false, 'the study is known once the image is indexed');
    s.instance({ sopInstanceUid: '1.2.1', studyInstanceUid: '1.2' });
    assert.equal(s.isSending('1.2'), true);
    // A second association of the scanner on the same study: closing the first does not end the sending.
    const b = assoc('b1', 'SCANNER');
    s.storeOpened({ association: b, sopInstanceUid: '1.2.2' });
    s.instance({ sopInstanceUid: '1.2.2', studyInstanceUid: '1.2' });
    s.closed(a);
    assert.equal(s.isSending('1.2'), true);
    assert.deepEqual(stopped, []);
    s.closed(b);
    assert.equal(s.isSending('1.2'), false);
    assert.deepEqual(stopped, [['1.2']]);
    assert.equal(s.associations, 0);
  });

  test('other AE titles and C-MOVE sub-operations are not the scanner sending', () => {
    const s = new ScannerSending('SCANNER');
    s.storeOpened({ association: assoc('x', 'WORKSTATION'), sopInstanceUid: '1.3.1' });
    s.instance({ sopInstanceUid: '1.3.1', studyInstanceUid: '1.3' });
    s.storeOpened({ association: assoc('y', 'SCANNER'), sopInstanceUid: '1.3.2', moveOriginatorAe: 'SCANNODE' });
    s.instance({ sopInstanceUid: '1.3.2', studyInstanceUid: '1.3' });
    assert.equal(s.isSending('1.3'), false);
    assert.equal(s.associations, 0);
  });

  test('a store that never got indexed is forgotten with its association', () => {
    const stopped: string[][] = [];
    const s = new ScannerSending('SCANNER', (studies) => stopped.push(studies));
    const a = assoc('a', 'SCANNER');
    s.storeOpened({ association: a, sopInstanceUid: '1.4.1' });
    s.closed(a);
    assert.deepEqual(stopped, [], 'it stored nothing: no study stopped');
    s.instance({ sopInstanceUid: '1.4.1', studyInstanceUid: '1.4' });
    assert.equal(s.isSending('1.4'), false);
  });
});

describe('AwaitedImages', () => {
  const img = (series: string, sop: string) => ({
    studyInstanceUid: '1.5',
    seriesInstanceUid: series,
    sopInstanceUid: sop,
  });

  test('named and counted missing images: only the last one says so', () => {
    const w = new AwaitedImages();
    w.set('1.5', [
      { seriesInstanceUid: 's1', level: 'IMAGE', sopInstanceUids: ['a', 'b'], missing: 2, expected: 4 },
      { seriesInstanceUid: 's2', level: 'SERIES', sopInstanceUids: [], missing: 2, expected: 2 },
    ]);
    assert.equal(w.arrived(img('s1', 'zz')), false, 'an image not awaited changes nothing');
    assert.equal(w.arrived(img('s3', 'a')), false);
    assert.equal(w.arrived(img('s1', 'a')), false);
    assert.equal(w.arrived(img('s2', 'x')), false);
    assert.equal(w.arrived(img('s1', 'b')), false);
    assert.equal(w.arrived(img('s2', 'y')), true, 'the last one');
    assert.equal(w.arrived(img('s2', 'z')), false, 'forgotten after it');
  });

  test('an empty list, or forget, drops the study', () => {
    const w = new AwaitedImages();
    const missing = [
      { seriesInstanceUid: 's1', level: 'IMAGE' as const, sopInstanceUids: ['a'], missing: 1, expected: 1 },
    ];
    w.set('1.5', missing);
    w.set('1.5', []);
    assert.equal(w.arrived(img('s1', 'a')), false);
    w.set('1.5', missing);
    w.forget('1.5');
    assert.equal(w.arrived(img('s1', 'a')), false);
  });
});
