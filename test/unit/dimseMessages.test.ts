import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeCommandSet } from '../../src/dimse/commandSet.js';
import { MessageAssembler, encodeMessage, type CommandSet } from '../../src/dimse/dimseMessages.js';

const storeRq = encodeCommandSet({
  CommandField: 0x0001,
  MessageID: 7,
  AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
  AffectedSOPInstanceUID: '1.2.3',
  CommandDataSetType: 0x0000,
})!;
const echoRq = encodeCommandSet({ CommandField: 0x0030, MessageID: 1, CommandDataSetType: 0x0101 })!;

function assembler() {
  const got = {
    commands: [] as CommandSet[],
    data: [] as Buffer[],
    ends: 0,
    aborts: [] as string[],
    invalid: [] as string[],
    unreadable: [] as string[],
  };
  const a = new MessageAssembler({
    command: (_pc, command, hasDataset) => {
      got.commands.push(command);
      if (!hasDataset) return undefined;
      return {
        write: (p) => got.data.push(Buffer.from(p)),
        end: () => got.ends++,
        abort: (r) => got.aborts.push(r),
      };
    },
    invalid: (_reason, detail) => got.invalid.push(detail),
    unreadable: (detail) => got.unreadable.push(detail),
  });
  return { a, got };
}

test('a command in two fragments, then its data set in three: one command, the bytes in order, one end', () => {
  const { a, got } = assembler();
  a.pdv(1, 0x01, storeRq.subarray(0, 10), true);
  a.pdv(1, 0x03, storeRq.subarray(10), true);
  a.pdv(1, 0x00, Buffer.from('ab'), false);
  a.pdv(1, 0x00, Buffer.from('c'), true);
  a.pdv(1, 0x02, Buffer.from('d'), true);
  assert.equal(got.commands[0]?.MessageID, 7);
  assert.equal(Buffer.concat(got.data).toString(), 'abcd');
  assert.equal(got.ends, 1);
  assert.deepEqual(got.invalid, []);
  assert.ok(!a.busy);
});

test('ordering rules: each violation is reported, and a data set in progress is abandoned', () => {
  const cases: Array<[string, (a: MessageAssembler) => void, RegExp]> = [
    ['data before any command', (a) => a.pdv(1, 0x02, Buffer.from('x'), true), /no command before it/],
    [
      'data before the last command fragment',
      (a) => (a.pdv(1, 0x01, storeRq.subarray(0, 4), true), a.pdv(1, 0x02, Buffer.from('x'), true)),
      /before the command's last fragment/,
    ],
    [
      'command fragments on two contexts',
      (a) => (a.pdv(1, 0x01, storeRq.subarray(0, 4), true), a.pdv(3, 0x03, storeRq.subarray(4), true)),
      /on contexts 1 and 3/,
    ],
    [
      'a command in the middle of a data set',
      (a) => (a.pdv(1, 0x03, storeRq, true), a.pdv(1, 0x00, Buffer.from('x'), true), a.pdv(1, 0x03, echoRq, true)),
      /middle of a data set/,
    ],
    [
      'data set fragments on another context',
      (a) => (a.pdv(1, 0x03, storeRq, true), a.pdv(3, 0x02, Buffer.from('x'), true)),
      /on context 3, its command on 1/,
    ],
    [
      'data after a command that has none',
      (a) => (a.pdv(1, 0x03, echoRq, true), a.pdv(1, 0x02, Buffer.from('x'), true)),
      /no command before it/,
    ],
    [
      'a command set over 64 KiB',
      (a) => {
        for (let i = 0; i < 70; i++) a.pdv(1, 0x01, Buffer.alloc(1024), true);
      },
      /over 65536/,
    ],
  ];
  for (const [what, run, re] of cases) {
    const { a, got } = assembler();
    run(a);
    assert.match(got.invalid[0] ?? '', re, what);
  }
  const { a, got } = assembler();
  a.pdv(1, 0x03, storeRq, true);
  a.pdv(1, 0x00, Buffer.from('x'), true);
  a.abort('peer gone');
  assert.deepEqual(got.aborts, ['peer gone']);
});

test('a command set that cannot be read is a DIMSE matter (the user aborts), not a PDU error', () => {
  const { a, got } = assembler();
  a.pdv(1, 0x03, Buffer.from([8, 0, 0, 0, 2, 0, 0, 0, 1, 0]), true);
  assert.equal(got.unreadable.length, 1);
  assert.deepEqual(got.invalid, []);
});

test('encodeMessage: a short response is one PDU; a data set is cut to the peer maximum', () => {
  const one = encodeMessage(1, { CommandField: 0x8030, MessageIDBeingRespondedTo: 1, Status: 0 }, undefined, 16384)!;
  assert.equal(one.length, 1);
  assert.equal(one[0]![11], 0x03);
  const many = encodeMessage(
    3,
    { CommandField: 0x8140, MessageIDBeingRespondedTo: 2, Status: 0 },
    Buffer.alloc(40_000),
    16384,
  )!;
  assert.equal(many.length, 4);
  assert.ok(many.every((p) => p.readUInt32BE(2) <= 16384));
  assert.deepEqual(
    many.map((p) => p[11]),
    [0x03, 0x00, 0x00, 0x02],
  );
});
