import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PduFramer } from '../../src/dimse/pduFramer.js';

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
 * Runs the framer over `stream` cut into pieces of `cut` bytes. The fake receiver streams from the moment it sees a
 * command PDU ("CMD") until a PDV with the last flag ends its data set, as the SCP does.
 */
function run(stream: Buffer, cut: number) {
  const whole: Buffer[] = [];
  const data = new Map<number, Buffer[]>();
  const errors: string[] = [];
  let streaming = false;
  const framer = new PduFramer({
    pdu: (buf) => {
      whole.push(Buffer.from(buf));
      if (buf[0] === 0x04 && buf.includes('CMD')) streaming = true;
    },
    streaming: () => streaming,
    pdv: (pc, control, piece, end) => {
      data.set(pc, [...(data.get(pc) ?? []), Buffer.from(piece)]);
      if (end && control & 2) streaming = false;
    },
    error: (err) => errors.push(err.message),
  });
  for (let i = 0; i < stream.length; i += cut) framer.push(stream.subarray(i, i + cut));
  return { whole, data: (pc: number) => Buffer.concat(data.get(pc) ?? []), errors };
}

const command = pData(pdv(1, 0x03, Buffer.from('CMD!')));
const payload = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
const dataPdus = [
  pData(pdv(1, 0x00, payload.subarray(0, 1000))),
  pData(pdv(1, 0x00, payload.subarray(1000, 1500)), pdv(1, 0x00, payload.subarray(1500, 2000))),
  pData(pdv(1, 0x02, payload.subarray(2000))),
];
const release = pdu(0x05, Buffer.alloc(4));

test('whole PDUs go to the library, a streamed data set arrives byte for byte, however the socket cuts it', () => {
  const stream = Buffer.concat([command, ...dataPdus, release]);
  for (const cut of [1, 5, 6, 7, 64, 1009, stream.length]) {
    const r = run(stream, cut);
    assert.deepEqual(r.errors, [], `cut ${cut}`);
    assert.deepEqual(r.whole, [command, release], `cut ${cut}: only the command and the release are whole`);
    assert.ok(r.data(1).equals(payload), `cut ${cut}: the data set`);
  }
});

test('a command after the data set in the same P-DATA-TF reaches the library as a P-DATA-TF of its own', () => {
  const next = pdv(3, 0x03, Buffer.from('CMD2'));
  const mixed = pData(pdv(1, 0x02, payload.subarray(0, 10)), next);
  for (const cut of [1, 4, 13, 1000]) {
    const r = run(Buffer.concat([command, mixed]), cut);
    assert.deepEqual(r.errors, []);
    assert.ok(r.data(1).equals(payload.subarray(0, 10)));
    assert.deepEqual(r.whole, [command, pData(next)], `cut ${cut}`);
  }
});

test('not DICOM UL: an unknown PDU type, a PDV running past its PDU, a PDV item shorter than its header', () => {
  assert.match(run(Buffer.from('GET / HTTP/1.1\r\n'), 3).errors[0]!, /unknown PDU type 0x47/);
  const overrun = pData(pdv(1, 0x00, Buffer.alloc(20)));
  overrun.writeUInt32BE(30, 6); // the item claims 28 value bytes, the PDU holds 20
  assert.match(run(Buffer.concat([command, overrun]), 7).errors[0]!, /runs past the end/);
  const short = pData(Buffer.from([0, 0, 0, 1, 1, 0]));
  assert.match(run(Buffer.concat([command, short]), 100).errors[0]!, /PDV item length 1/);
});

test('an empty PDU and an empty last PDV', () => {
  const r = run(Buffer.concat([command, pData(pdv(1, 0x02, Buffer.alloc(0))), pdu(0x06, Buffer.alloc(0))]), 2);
  assert.deepEqual(r.errors, []);
  assert.equal(r.data(1).length, 0);
  assert.deepEqual(r.whole, [command, pdu(0x06, Buffer.alloc(0))]);
});
