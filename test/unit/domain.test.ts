import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isValidUid, requireUid, cleanUid } from '../../src/domain/uid.js';
import { archivePath, insideDataDir, spoolDirs, spoolPath } from '../../src/domain/paths.js';
import { pixelDataTruncation } from '../../src/domain/pixelData.js';
import { checkAssociation } from '../../src/dimse/policy.js';
import { rejectionCodes } from '../../src/dimse/rejectTable.js';
import { isStorageSopClass } from '../../src/domain/sopClass.js';
import { pickTransferSyntax, STORAGE_TRANSFER_SYNTAXES } from '../../src/domain/transferSyntax.js';

test('UID grammar: digits and dots, no leading zeros, at most 64 characters', () => {
  assert.ok(isValidUid('1.2.840.10008.5.1.4.1.1.4'));
  assert.ok(isValidUid('2.25.0.1'));
  for (const bad of [
    '',
    '1',
    '1..2',
    '1.02',
    '1.2.',
    '.1.2',
    '1.2.3/../../x',
    '1.2.a',
    `1.${'2'.repeat(63)}`,
    '1.2 ',
  ]) {
    assert.equal(isValidUid(bad), false, bad);
  }
  assert.equal(cleanUid('1.2.3\0'), '1.2.3');
  assert.throws(() => requireUid('StudyInstanceUID', '../etc'), /StudyInstanceUID "..\/etc" is not a valid DICOM UID/);
});

test('archive and spool paths are built from validated UIDs only and stay inside dataDir', () => {
  assert.equal(spoolPath('1.2.3'), 'incoming/1.2.3.dcm');
  assert.equal(archivePath('1.2', '1.2.3', '1.2.3.4'), 'site/raw/1.2/1.2.3/1.2.3.4.dcm');
  assert.throws(() => spoolPath('1.2.3/../../x'));
  assert.throws(() => insideDataDir('/data', '../x'), /leaves the data directory/);
  assert.equal(insideDataDir('/data', 'incoming/a.dcm'), '/data/incoming/a.dcm');
});

function explicitPixelData(declared: number, arrived: number): { head: Buffer; total: number } {
  const prefix = Buffer.alloc(20, 0x11);
  const hdr = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57, 0, 0, 0, 0, 0, 0]);
  hdr.writeUInt32LE(declared, 8);
  return {
    head: Buffer.concat([prefix, hdr, Buffer.alloc(Math.min(arrived, 100))]),
    total: prefix.length + hdr.length + arrived,
  };
}

test('pixel data completeness: a declared length beyond what arrived is truncation', () => {
  const ok = explicitPixelData(1000, 1000);
  assert.equal(pixelDataTruncation(ok.head, ok.total, Buffer.alloc(0), '1.2.840.10008.1.2.1'), undefined);
  const cut = explicitPixelData(1000, 600);
  assert.match(
    pixelDataTruncation(cut.head, cut.total, Buffer.alloc(0), '1.2.840.10008.1.2.1') ?? '',
    /declares 1000 bytes but only 600/,
  );
  const encapsulated = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0, 0, 0xff, 0xff, 0xff, 0xff]);
  const delim = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  assert.equal(pixelDataTruncation(encapsulated, 500, delim, '1.2.840.10008.1.2.4.50'), undefined);
  assert.match(
    pixelDataTruncation(encapsulated, 500, Buffer.alloc(8), '1.2.840.10008.1.2.4.50') ?? '',
    /sequence delimiter/,
  );
  assert.equal(
    pixelDataTruncation(cut.head, cut.total, Buffer.alloc(0), '1.2.840.10008.1.2.1.99'),
    undefined,
    'deflated: not checked',
  );
});

test('association policy: called AE, calling AE allow-list, association limit', () => {
  const policy = { aeTitle: 'SCANNODE', allowedCallingAeTitles: ['MRI1'], maxAssociations: 2 };
  assert.equal(checkAssociation(policy, 'MRI1', 'SCANNODE', 0), undefined);
  assert.equal(checkAssociation(policy, 'MRI1', 'OTHER', 0)?.kind, 'called-ae-not-recognized');
  assert.equal(checkAssociation(policy, 'CT9', 'SCANNODE', 0)?.kind, 'calling-ae-not-recognized');
  const limit = checkAssociation(policy, 'MRI1', 'SCANNODE', 2)!;
  assert.equal(limit.kind, 'local-limit-exceeded');
  assert.deepEqual(rejectionCodes(limit), { result: 2, source: 3, reason: 2 });
  assert.equal(checkAssociation({ ...policy, allowedCallingAeTitles: [] }, 'ANY', 'SCANNODE', 0), undefined);
});

test('every storage SOP class is accepted, services are not', () => {
  for (const uid of [
    '1.2.840.10008.5.1.4.1.1.66.4',
    '1.2.840.10008.5.1.4.1.1.481.3',
    '1.2.840.10008.5.1.4.1.1.88.59',
    '1.2.840.10008.5.1.4.1.1.11.1',
    '1.3.12.2.1107.5.9.1',
  ]) {
    assert.ok(isStorageSopClass(uid), uid);
  }
  for (const uid of [
    '1.2.840.10008.1.1',
    '1.2.840.10008.3.1.2.3.3',
    '1.2.840.10008.5.1.4.1.2.2.1',
    '1.2.840.10008.5.1.4.31',
    'x',
  ]) {
    assert.equal(isStorageSopClass(uid), false, uid);
  }
});

test("transfer syntax: the sender's order among what we accept", () => {
  assert.equal(
    pickTransferSyntax(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1'], STORAGE_TRANSFER_SYNTAXES),
    '1.2.840.10008.1.2',
  );
  assert.equal(
    pickTransferSyntax(['1.2.3.4', '1.2.840.10008.1.2.5'], STORAGE_TRANSFER_SYNTAXES),
    '1.2.840.10008.1.2.5',
  );
  assert.equal(pickTransferSyntax(['1.2.3.4'], STORAGE_TRANSFER_SYNTAXES), undefined);
});

test('a node spool: incoming/ alone by default, incoming/nodes/<id>/ when shared; an id that is a path step is refused', () => {
  assert.deepEqual(spoolDirs(), { incoming: 'incoming', pool: 'incoming/.pool', torn: 'incoming/torn' });
  assert.equal(spoolPath('1.2.3'), 'incoming/1.2.3.dcm');
  const b = spoolDirs('node-b');
  assert.deepEqual(b, {
    incoming: 'incoming/nodes/node-b',
    pool: 'incoming/nodes/node-b/.pool',
    torn: 'incoming/nodes/node-b/torn',
  });
  assert.equal(spoolPath('1.2.3', b), 'incoming/nodes/node-b/1.2.3.dcm');
  for (const bad of ['..', '.', 'a/b', '']) assert.throws(() => spoolDirs(bad), /cannot name a spool folder/);
});
