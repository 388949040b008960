import assert from 'node:assert/strict';
import { test } from 'node:test';
import dimse from 'dcmjs-dimse';
import { decodeCommandSet, encodeCommandSet } from '../../src/dimse/commandSet.js';
import { pdataPdu } from '../../src/dimse/pdu.js';

// dcmjs-dimse's own codec (full dcmjs datasets) is the reference: our bytes must be what it writes and reads.
interface LibDataset {
  getElements(): Record<string, unknown>;
  getDenaturalizedCommandDataset(): Buffer;
}
const { Dataset, requests, responses } = dimse as unknown as {
  Dataset: new (elementsOrBuffer?: unknown, ts?: string) => LibDataset;
  requests: { CStoreRequest: new () => { getCommandDataset(): LibDataset; setMessageId(n: number): void } };
  responses: {
    CStoreResponse: { fromRequest(r: unknown): { getCommandDataset(): LibDataset; setErrorComment(c: string): void } };
  };
};

function storeRequest() {
  const rq = new requests.CStoreRequest();
  const ds = rq.getCommandDataset();
  Object.assign(ds.getElements(), {
    AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
    AffectedSOPInstanceUID: '1.2.3.4.5.6.7',
    MoveOriginatorApplicationEntityTitle: 'MOVESCU',
    MoveOriginatorMessageID: 7,
    CommandDataSetType: 0x0202,
  });
  rq.setMessageId(42);
  return rq;
}

test('a C-STORE-RQ written by dcmjs-dimse decodes to the elements it holds', () => {
  const rq = storeRequest();
  const bytes = rq.getCommandDataset().getDenaturalizedCommandDataset();
  const decoded = decodeCommandSet(bytes);
  assert.deepEqual(decoded, {
    AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
    CommandField: 0x0001,
    MessageID: 42,
    Priority: 0,
    CommandDataSetType: 0x0202,
    AffectedSOPInstanceUID: '1.2.3.4.5.6.7',
    MoveOriginatorApplicationEntityTitle: 'MOVESCU',
    MoveOriginatorMessageID: 7,
  });
});

test('a C-STORE-RSP encodes to the same bytes dcmjs-dimse writes, odd-length values padded', () => {
  const rsp = responses.CStoreResponse.fromRequest(storeRequest());
  rsp.setErrorComment('odd');
  const elements = rsp.getCommandDataset().getElements();
  const ours = encodeCommandSet(elements);
  assert.ok(ours);
  assert.equal(ours.toString('hex'), rsp.getCommandDataset().getDenaturalizedCommandDataset().toString('hex'));
  // And the library reads ours back to the same elements.
  const back = new Dataset(ours).getElements();
  for (const [k, v] of Object.entries(elements)) assert.equal(back[k], v, k);
});

test('unknown keywords and bad values are not encoded; broken bytes are not a command set; unknown elements skipped', () => {
  assert.equal(encodeCommandSet({ CommandField: 0x8001, NoSuchKeyword: 'x' }), undefined);
  assert.equal(encodeCommandSet({ Status: 0x10000 }), undefined);
  assert.equal(encodeCommandSet({ Status: 'A700' }), undefined);
  assert.equal(encodeCommandSet({ AffectedSOPClassUID: 5 }), undefined);
  const good = encodeCommandSet({ CommandField: 0x0001, MessageID: 1 })!;
  assert.equal(decodeCommandSet(good.subarray(0, good.length - 1)), undefined, 'truncated');
  const otherGroup = Buffer.from(good);
  otherGroup.writeUInt16LE(0x0008, 12);
  assert.equal(decodeCommandSet(otherGroup), undefined, 'not group 0000');
  const offending = Buffer.concat([good, Buffer.from([0, 0, 0x01, 0x09, 4, 0, 0, 0, 0x10, 0, 0x10, 0])]);
  assert.deepEqual(decodeCommandSet(offending), { CommandField: 0x0001, MessageID: 1 }, 'Offending Element skipped');
  const badSize = Buffer.from(good);
  badSize.writeUInt32LE(3, 12 + 4); // CommandField (US) of 3 bytes
  assert.equal(decodeCommandSet(badSize), undefined, 'a US of 3 bytes');
});

test('pdataPdu: one P-DATA-TF, one PDV flagged command + last', () => {
  const cmd = encodeCommandSet({ CommandField: 0x8001, Status: 0 })!;
  const pdu = pdataPdu(3, 0x03, cmd);
  assert.equal(pdu[0], 0x04);
  assert.equal(pdu.readUInt32BE(2), pdu.length - 6);
  assert.equal(pdu.readUInt32BE(6), cmd.length + 2);
  assert.equal(pdu[10], 3);
  assert.equal(pdu[11], 0x03);
  assert.ok(pdu.subarray(12).equals(cmd));
});
