import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PduFramer, type Disposition } from '../../src/dimse/pduFramer.js';

function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

function pdv(pc: number, control: number, value: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt32BE(value.length + 2, 0);
  head[4] = pc;
  head[5] = control;
  return Buffer.concat([head, value]);
}

const pData = (...items: Buffer[]) => pdu(0x04, Buffer.concat(items));

/**
 * Runs the framer over `stream` cut into pieces of `cut` bytes: P-DATA-TF streamed, type 0x09 skipped, the rest
 * whole (as the upper layer answers).
 */
function run(stream: Buffer, cut: number, decide?: (type: number, length: number) => Disposition) {
  const whole: Buffer[] = [];
  const data = new Map<number, Buffer[]>();
  const errors: string[] = [];
  const headers: Array<[number, number]> = [];
  let ends = 0;
  const framer = new PduFramer({
    header: (type, length) => {
      headers.push([type, length]);
      return decide?.(type, length) ?? (type === 0x04 ? 'stream' : type === 0x09 ? 'skip' : 'whole');
    },
    pdu: (type, body) => whole.push(pdu(type, Buffer.from(body))),
    pdv: (pc, _control, piece) => data.set(pc, [...(data.get(pc) ?? []), Buffer.from(piece)]),
    pduEnd: () => ends++,
    error: (err) => errors.push(err.message),
  });
  for (let i = 0; i < stream.length; i += cut) framer.push(stream.subarray(i, i + cut));
  return { whole, data: (pc: number) => Buffer.concat(data.get(pc) ?? []), errors, headers, ends, framer };
}

const command = pData(pdv(1, 0x03, Buffer.from('CMD!')));
const payload = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
const dataPdus = [
  pData(pdv(1, 0x00, payload.subarray(0, 1000))),
  pData(pdv(1, 0x00, payload.subarray(1000, 1500)), pdv(1, 0x00, payload.subarray(1500, 2000))),
  pData(pdv(1, 0x02, payload.subarray(2000))),
];
const release = pdu(0x05, Buffer.alloc(4));

test('P-DATA-TF PDVs stream byte for byte and other PDUs arrive whole, however the socket cuts them', () => {
  const stream = Buffer.concat([command, ...dataPdus, release]);
  for (const cut of [1, 5, 6, 7, 64, 1009, stream.length]) {
    const r = run(stream, cut);
    assert.deepEqual(r.errors, [], `cut ${cut}`);
    assert.deepEqual(r.whole, [release], `cut ${cut}: only the release is whole`);
    assert.ok(r.data(1).equals(Buffer.concat([Buffer.from('CMD!'), payload])), `cut ${cut}: command and data set`);
    assert.equal(r.ends, 4, 'one end per P-DATA-TF');
  }
});

test('a skipped body is counted off without being kept, and the next PDU is read normally', () => {
  const junk = pdu(0x09, Buffer.alloc(100_000, 7));
  for (const cut of [1, 3, 4096]) {
    const r = run(Buffer.concat([junk, release]), cut);
    assert.deepEqual(r.headers, [
      [0x09, 100_000],
      [0x05, 4],
    ]);
    assert.deepEqual(r.whole, [release]);
  }
});

test('the header is judged before any of the body is read: a 4 GiB PDU can be refused from its 6 bytes', () => {
  const seen: number[] = [];
  let bodies = 0;
  const framer: PduFramer = new PduFramer({
    header: (_type, length) => {
      seen.push(length);
      framer.stop();
      return 'skip';
    },
    pdu: () => bodies++,
    pdv: () => bodies++,
    pduEnd: () => undefined,
    error: () => undefined,
  });
  framer.push(Buffer.from([0x01, 0x00, 0xff, 0xff]));
  framer.push(Buffer.concat([Buffer.from([0xff, 0xf0]), Buffer.alloc(1000)]));
  framer.push(Buffer.alloc(1000));
  assert.deepEqual(seen, [0xfffffff0]);
  assert.equal(bodies, 0);
  assert.ok(framer.isStopped);
});

test('a PDV that does not fit its PDU is caught at its header; a PDV item shorter than its header; a cut PDV header', () => {
  const overrun = pData(pdv(1, 0x00, Buffer.alloc(20)));
  overrun.writeUInt32BE(30, 6); // the item claims 28 value bytes, the PDU holds 20
  const r = run(overrun, 7);
  assert.match(r.errors[0]!, /a PDV of 28 bytes in the 20 left/);
  assert.equal(r.data(1).length, 0, 'nothing of it was passed on');
  const short = pData(Buffer.from([0, 0, 0, 1, 1, 0]));
  assert.match(run(short, 100).errors[0]!, /PDV item length 1/);
  const cutHeader = pData(pdv(1, 0x00, Buffer.alloc(4)), Buffer.from([0, 0]));
  assert.match(run(cutHeader, 5).errors[0]!, /runs past the end/);
});

test('an empty last PDV, and a zero-length PDU read whole', () => {
  const r = run(Buffer.concat([pData(pdv(1, 0x02, Buffer.alloc(0))), pdu(0x06, Buffer.alloc(0))]), 2);
  assert.deepEqual(r.errors, []);
  assert.equal(r.data(1).length, 0);
  assert.deepEqual(r.whole, [pdu(0x06, Buffer.alloc(0))]);
});
