import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { test } from 'node:test';
import dcmjs from 'dcmjs';
import {
  DicomWalkError,
  UNDEFINED_LENGTH,
  elementValue,
  tagText,
  walkDataset,
  type ByteSource,
  type WalkOptions,
  type WalkedElement,
} from '../../src/domain/dicomWalk.js';
import { datasetOffset } from '../../src/storage/files.js';
import { CI } from '../helpers/peers.js';

const LE_EXPLICIT: WalkOptions = { explicitVr: true, littleEndian: true, maxDepth: 16, complete: true };
const LONG = new Set(['OB', 'OW', 'SQ', 'UN', 'UT']);

/** One explicit-VR element (little or big endian). */
function el(tag: number, vr: string, value: Buffer, length = value.length, le = true): Buffer {
  const long = LONG.has(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  const w16 = (v: number, at: number) => void (le ? head.writeUInt16LE(v, at) : head.writeUInt16BE(v, at));
  w16(tag >>> 16, 0);
  w16(tag & 0xffff, 2);
  head.write(vr, 4, 'latin1');
  if (!long) w16(length, 6);
  else if (le) head.writeUInt32LE(length, 8);
  else head.writeUInt32BE(length, 8);
  return Buffer.concat([head, value]);
}

/** An item/delimiter header (no VR in any transfer syntax). */
function marker(tag: number, length: number, le = true): Buffer {
  const b = Buffer.alloc(8);
  if (le) {
    b.writeUInt16LE(tag >>> 16, 0);
    b.writeUInt16LE(tag & 0xffff, 2);
    b.writeUInt32LE(length, 4);
  } else {
    b.writeUInt16BE(tag >>> 16, 0);
    b.writeUInt16BE(tag & 0xffff, 2);
    b.writeUInt32BE(length, 4);
  }
  return b;
}
const ITEM = 0xfffee000;
const ITEM_END = 0xfffee00d;
const SEQ_END = 0xfffee0dd;
const text = (s: string) => Buffer.from(s.length % 2 ? `${s} ` : s, 'latin1');

function collect(buf: Buffer | ByteSource, opts: WalkOptions): Array<[string, string, number]> {
  const seen: Array<[string, string, number]> = [];
  const end = walkDataset(buf, opts, (e) => void seen.push([tagText(e.tag), e.vr, e.depth]));
  assert.equal(end.status, 'complete');
  return seen;
}

test('walks flat and nested elements with their depths, defined and undefined lengths alike', () => {
  const inner = el(0x00081150, 'UI', text('1.2.3'));
  const definedItem = Buffer.concat([marker(ITEM, inner.length), inner]);
  const undefinedItem = Buffer.concat([marker(ITEM, UNDEFINED_LENGTH), inner, marker(ITEM_END, 0)]);
  const ds = Buffer.concat([
    el(0x00080020, 'DA', text('20260101')),
    el(0x00081140, 'SQ', definedItem),
    el(0x00081115, 'SQ', Buffer.concat([undefinedItem, marker(SEQ_END, 0)]), UNDEFINED_LENGTH),
    el(0x00100010, 'PN', text('Doe^Jane')),
  ]);
  assert.deepEqual(collect(ds, LE_EXPLICIT), [
    ['(0008,0020)', 'DA', 0],
    ['(0008,1140)', 'SQ', 0],
    ['(0008,1150)', 'UI', 1],
    ['(0008,1115)', 'SQ', 0],
    ['(0008,1150)', 'UI', 1],
    ['(0010,0010)', 'PN', 0],
  ]);
});

test('100 000 nested undefined-length sequences end in a too-deep error, not a stack overflow', () => {
  const open = Buffer.concat([el(0x00081115, 'SQ', Buffer.alloc(0), UNDEFINED_LENGTH), marker(ITEM, UNDEFINED_LENGTH)]);
  const deep = Buffer.concat(Array.from({ length: 100_000 }, () => open));
  const err = captureWalkError(() => walkDataset(deep, LE_EXPLICIT));
  assert.equal(err.kind, 'too-deep');
  // The same depth within the limit walks.
  const shallow = Buffer.concat([
    ...Array.from({ length: 16 }, () => open),
    ...Array.from({ length: 16 }, () => Buffer.concat([marker(ITEM_END, 0), marker(SEQ_END, 0)])),
  ]);
  assert.equal(walkDataset(shallow, LE_EXPLICIT).status, 'complete');
});

test('implicit VR: sequences are known from the dictionary (defined length) or by an undefined length', () => {
  const implicit = (tag: number, value: Buffer, length = value.length) => Buffer.concat([marker(tag, length), value]);
  const inner = implicit(0x0020000e, text('1.2.3.4'));
  const ds = Buffer.concat([
    implicit(0x00080060, text('MR')),
    implicit(0x00081115, Buffer.concat([marker(ITEM, inner.length), inner])), // ReferencedSeriesSequence: SQ
    implicit(
      0x00091010,
      Buffer.concat([marker(ITEM, UNDEFINED_LENGTH), inner, marker(ITEM_END, 0), marker(SEQ_END, 0)]),
      UNDEFINED_LENGTH,
    ),
  ]);
  assert.deepEqual(collect(ds, { ...LE_EXPLICIT, explicitVr: false }), [
    ['(0008,0060)', 'CS', 0],
    ['(0008,1115)', 'SQ', 0],
    ['(0020,000E)', 'UI', 1],
    ['(0009,1010)', 'UN', 0],
    ['(0020,000E)', 'UI', 1],
  ]);
});

test('explicit VR big endian', () => {
  const inner = el(0x00081150, 'UI', text('1.2'), undefined, false);
  const ds = Buffer.concat([
    el(0x00280010, 'US', Buffer.from([0x01, 0x00]), undefined, false),
    el(0x00081140, 'SQ', Buffer.concat([marker(ITEM, inner.length, false), inner]), undefined, false),
  ]);
  const seen: WalkedElement[] = [];
  walkDataset(ds, { ...LE_EXPLICIT, littleEndian: false }, (e) => void seen.push(e));
  assert.deepEqual(
    seen.map((e) => [tagText(e.tag), e.depth]),
    [
      ['(0028,0010)', 0],
      ['(0008,1140)', 0],
      ['(0008,1150)', 1],
    ],
  );
  assert.equal(elementValue(ds, seen[0]!).readUInt16BE(0), 256);
});

test('encapsulated pixel data is skipped fragment by fragment, and what follows it is walked', () => {
  const frags = Buffer.concat([marker(ITEM, 0), marker(ITEM, 4), Buffer.from('abcd'), marker(SEQ_END, 0)]);
  const ds = Buffer.concat([el(0x7fe00010, 'OB', frags, UNDEFINED_LENGTH), el(0xfffcfffc, 'OB', Buffer.alloc(2))]);
  assert.deepEqual(collect(ds, LE_EXPLICIT), [
    ['(7FE0,0010)', 'OB', 0],
    ['(FFFC,FFFC)', 'OB', 0],
  ]);
});

test('a prefix: need-more when incomplete, truncated when it is the whole data set', () => {
  const ds = Buffer.concat([el(0x00080020, 'DA', text('20260101')), el(0x00100010, 'PN', text('Doe^Jane'))]);
  const cut = ds.subarray(0, ds.length - 3);
  assert.deepEqual(walkDataset(cut, { ...LE_EXPLICIT, complete: false }), { status: 'need-more', offset: 16 });
  assert.equal(captureWalkError(() => walkDataset(cut, LE_EXPLICIT)).kind, 'truncated');
  const open = Buffer.concat([el(0x00081115, 'SQ', Buffer.alloc(0), UNDEFINED_LENGTH), marker(ITEM, UNDEFINED_LENGTH)]);
  assert.equal(captureWalkError(() => walkDataset(open, LE_EXPLICIT)).kind, 'truncated');
});

test('the visitor stops the walk, or skips a sequence whose contents are still checked', () => {
  const uid = el(0x00081150, 'UI', text('1.2'));
  const item = Buffer.concat([marker(ITEM, uid.length), uid]);
  const ds = Buffer.concat([el(0x00081140, 'SQ', item), el(0x7fe00010, 'OW', Buffer.alloc(4))]);
  const tags: string[] = [];
  const end = walkDataset(ds, LE_EXPLICIT, (e) => {
    tags.push(tagText(e.tag));
    if (e.tag === 0x00081140) return 'skip';
    if (e.tag === 0x7fe00010) return 'stop';
  });
  assert.deepEqual(tags, ['(0008,1140)', '(7FE0,0010)']);
  assert.deepEqual(end, { status: 'stopped', offset: ds.length - 16 });
  const badInside = Buffer.concat([marker(ITEM, 8), el(0x00081150, 'U1', Buffer.alloc(0))]);
  assert.equal(
    captureWalkError(() => walkDataset(el(0x00081140, 'SQ', badInside), LE_EXPLICIT, () => 'skip')).kind,
    'malformed',
  );
});

test('malformed structures are refused with the offset', () => {
  const cases: Array<[string, Buffer]> = [
    ['an item outside a sequence', marker(ITEM, 0)],
    ['a VR that is not two capitals', el(0x00080020, 'da', text('20260101'))],
    [
      'an element that overruns its item',
      el(0x00081140, 'SQ', Buffer.concat([marker(ITEM, 4), el(0x00081150, 'UI', text('1.2'))])),
    ],
    ['an item that overruns its sequence', el(0x00081140, 'SQ', marker(ITEM, 100), 8)],
    ['a non-item inside a sequence', el(0x00081140, 'SQ', el(0x00081150, 'UI', text('1.2')))],
    ['an undefined length on a text element', el(0x00081030, 'UT', Buffer.alloc(0), UNDEFINED_LENGTH)],
    ['an item delimiter at the top level', marker(ITEM_END, 0)],
  ];
  for (const [name, ds] of cases) {
    const err = captureWalkError(() => walkDataset(ds, LE_EXPLICIT));
    assert.equal(err.kind, 'malformed', name);
    assert.match(err.message, /at byte \d+/, name);
  }
});

const PYDICOM = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

test('agrees with dcmjs on the top-level elements of pydicom’s test files', (t) => {
  if (!fs.existsSync(PYDICOM)) {
    if (CI) throw new Error(`${PYDICOM} missing (python3-pydicom)`);
    t.skip('python3-pydicom is not installed');
    return;
  }
  let compared = 0;
  for (const name of fs.readdirSync(PYDICOM).filter((n) => n.endsWith('.dcm'))) {
    const file = fs.readFileSync(path.join(PYDICOM, name));
    let dict: Record<string, unknown>;
    let ts: string;
    try {
      const parsed = dcmjs.data.DicomMessage.readFile(
        file.buffer.slice(file.byteOffset, file.byteOffset + file.length) as ArrayBuffer,
      );
      dict = parsed.dict;
      ts = String((parsed.meta['00020010'] as { Value: string[] }).Value[0]);
    } catch {
      continue; // files dcmjs cannot read (no meta, deliberately broken) say nothing about the walker
    }
    const offset = datasetOffset(file);
    let ds = file;
    let start = offset;
    if (ts === '1.2.840.10008.1.2.1.99') {
      ds = zlib.inflateRawSync(file.subarray(offset));
      start = 0;
    }
    const tags: string[] = [];
    if (name === 'SC_rgb_jpeg.dcm') {
      // Explicit VR in its meta, implicit VR in its data set: dcmjs guesses, DCMTK's dcmdump refuses it, as we do.
      const opts = { explicitVr: true, littleEndian: true, offset: start, maxDepth: 16, complete: true };
      assert.equal(captureWalkError(() => walkDataset(ds, opts)).kind, 'malformed', name);
      continue;
    }
    if (/truncated/.test(name)) {
      // dcmjs reads a cut file without an error; the walker says where it ends.
      const opts = { explicitVr: true, littleEndian: true, offset: start, maxDepth: 16, complete: true };
      assert.equal(captureWalkError(() => walkDataset(ds, opts)).kind, 'truncated', name);
      continue;
    }
    walkDataset(
      ds,
      {
        explicitVr: ts !== '1.2.840.10008.1.2',
        littleEndian: ts !== '1.2.840.10008.1.2.2',
        offset: start,
        maxDepth: 16,
        complete: true,
      },
      (e) => {
        if (e.depth === 0) tags.push(tagText(e.tag).replace(/[(),]/g, ''));
      },
    );
    // Sorted: a JavaScript object lists integer-like keys (e.g. '30040002') before the others.
    assert.deepEqual(tags.sort(), Object.keys(dict).sort(), name);
    compared++;
  }
  assert.ok(compared >= 40, `compared ${compared} files`);
});

function captureWalkError(fn: () => unknown): DicomWalkError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DicomWalkError) return err;
    throw err;
  }
  assert.fail('expected a DicomWalkError');
}

test('structure events: items open and close, sequences close, in order, defined and undefined lengths alike', () => {
  const inner = el(0x00081150, 'UI', text('1.2.3'));
  const ds = Buffer.concat([
    el(0x00081140, 'SQ', Buffer.concat([marker(ITEM, inner.length), inner, marker(ITEM, inner.length), inner])),
    el(
      0x00081115,
      'SQ',
      Buffer.concat([marker(ITEM, UNDEFINED_LENGTH), inner, marker(ITEM_END, 0), marker(SEQ_END, 0)]),
      UNDEFINED_LENGTH,
    ),
  ]);
  const seen: string[] = [];
  walkDataset(
    ds,
    LE_EXPLICIT,
    (e) => void seen.push(`${tagText(e.tag)}@${e.depth}`),
    (ev) => void seen.push(`${ev.kind}@${ev.depth}`),
  );
  assert.deepEqual(seen, [
    '(0008,1140)@0',
    'item@1',
    '(0008,1150)@1',
    'item-end@1',
    'item@1',
    '(0008,1150)@1',
    'item-end@1',
    'sequence-end@1',
    '(0008,1115)@0',
    'item@1',
    '(0008,1150)@1',
    'item-end@1',
    'sequence-end@1',
  ]);
});

test('explicit VR: the items of a UN of undefined length are walked as implicit VR (PS3.5 6.2.2)', () => {
  const implicitInner = Buffer.concat([marker(0x0020000e, 8), text('1.2.3.4')]);
  const ds = Buffer.concat([
    el(
      0x00091010,
      'UN',
      Buffer.concat([marker(ITEM, UNDEFINED_LENGTH), implicitInner, marker(ITEM_END, 0), marker(SEQ_END, 0)]),
      UNDEFINED_LENGTH,
    ),
    el(0x00100010, 'PN', text('Doe^Jane')),
  ]);
  assert.deepEqual(collect(ds, LE_EXPLICIT), [
    ['(0009,1010)', 'UN', 0],
    ['(0020,000E)', 'UI', 1],
    ['(0010,0010)', 'PN', 0],
  ]);
});

test('a byte source that is not a buffer: the walk asks only for element headers, never for skipped values', () => {
  const big = el(0x00091010, 'OB', Buffer.alloc(1 << 20));
  const ds = Buffer.concat([el(0x00080060, 'CS', text('MR')), big, el(0x00100010, 'PN', text('Doe^Jane'))]);
  let asked = 0;
  const src: ByteSource = {
    length: ds.length,
    view: (at, n) => {
      asked += n;
      return ds.subarray(at, at + n);
    },
  };
  assert.equal(collect(src, LE_EXPLICIT).length, 3);
  assert.ok(asked <= 3 * 12, `read ${asked} bytes`);
});
