/**
 * The mutation suite's oracle: a strict reading of PS3.8 / PS3.7 applied to the bytes the peer sent, independent of
 * scannode's code. It says only what is certain: an A-ASSOCIATE-RQ that must be refused (the checks issue 11 lists),
 * a C-STORE that can never have been received whole and valid (a UL or DIMSE violation before its last fragment, or
 * no last fragment at all). Whatever it cannot judge it calls "unsure", and the suite then asserts only liveness.
 */
import { UID } from './parrot.js';

export type RqVerdict = { kind: 'valid' } | { kind: 'invalid'; why: string } | { kind: 'unsure'; why: string };

export interface RqContent {
  /** Presentation context ID -> abstract syntax. */
  contexts: Map<number, string>;
}

const text = (b: Buffer) => b.toString('latin1');

/** AE title field per PS3.5 AE: no control characters, no backslash, not all spaces; bytes >= 0x7F are unsure. */
function aeProblem(field: Buffer): { invalid?: string; unsure?: string } {
  if (field.every((c) => c === 0x20)) return { invalid: 'AE title all spaces' };
  if (field.some((c) => c < 0x20)) return { invalid: 'AE title with a control character' };
  if (field.includes(0x5c)) return { invalid: 'AE title with a backslash' };
  if (field.some((c) => c >= 0x7f)) return { unsure: 'AE title outside the default repertoire' };
  return {};
}

/** Items of a buffer that must tile it exactly: [type, value][] or undefined when a length overruns. */
function items(buf: Buffer, headLength = 4): Array<[number, Buffer]> | undefined {
  const out: Array<[number, Buffer]> = [];
  let at = 0;
  while (at < buf.length) {
    if (at + headLength > buf.length) return undefined;
    const len = buf.readUInt16BE(at + 2);
    if (at + 4 + len > buf.length) return undefined;
    out.push([buf[at]!, buf.subarray(at + 4, at + 4 + len)]);
    at += 4 + len;
  }
  return out;
}

/** Judges an A-ASSOCIATE-RQ PDU (header included) addressed to `calledAe`. */
export function checkRq(pduBytes: Buffer, calledAe: string): RqVerdict & { content?: RqContent } {
  if (pduBytes.length < 6 || pduBytes[0] !== 0x01) return { kind: 'invalid', why: 'not an A-ASSOCIATE-RQ' };
  const length = pduBytes.readUInt32BE(2);
  const body = pduBytes.subarray(6);
  if (body.length !== length) return { kind: 'invalid', why: 'PDU length does not match the bytes sent' };
  if (body.length < 68) return { kind: 'invalid', why: 'shorter than the fixed fields' };
  if ((body.readUInt16BE(0) & 1) === 0) return { kind: 'invalid', why: 'protocol version without bit 0' };
  const called = body.subarray(4, 20);
  const calling = body.subarray(20, 36);
  for (const [name, field] of [
    ['called', called],
    ['calling', calling],
  ] as const) {
    const p = aeProblem(field);
    if (p.invalid) return { kind: 'invalid', why: `${name} ${p.invalid}` };
    if (p.unsure) return { kind: 'unsure', why: `${name} ${p.unsure}` };
  }
  if (text(called).trim() !== calledAe) return { kind: 'invalid', why: 'called AE is not ours' };
  const top = items(body.subarray(68));
  if (!top) return { kind: 'invalid', why: 'an item overruns the PDU' };
  const contexts = new Map<number, string>();
  let app = 0;
  let user = 0;
  let unsure: string | undefined;
  for (const [type, value] of top) {
    if (type === 0x10) {
      app++;
      if (text(value) !== UID.appContext) return { kind: 'invalid', why: 'unknown application context name' };
    } else if (type === 0x20) {
      if (value.length < 4) return { kind: 'invalid', why: 'presentation context item too short' };
      const id = value[0]!;
      if (id % 2 === 0) return { kind: 'invalid', why: 'even presentation context ID' };
      if (contexts.has(id)) return { kind: 'invalid', why: 'duplicate presentation context ID' };
      const subs = items(value.subarray(4));
      if (!subs) return { kind: 'invalid', why: 'a sub-item overruns its presentation context' };
      const abstracts = subs.filter(([t]) => t === 0x30);
      const transfers = subs.filter(([t]) => t === 0x40);
      if (abstracts.length !== 1) return { kind: 'invalid', why: 'not one abstract syntax' };
      if (transfers.length === 0) return { kind: 'invalid', why: 'no transfer syntax' };
      if (subs.length !== abstracts.length + transfers.length) unsure ??= 'unknown sub-item in a presentation context';
      contexts.set(id, text(abstracts[0]![1]));
    } else if (type === 0x50) {
      user++;
      const subs = items(value);
      if (!subs) return { kind: 'invalid', why: 'a sub-item overruns the user information' };
      const max = subs.filter(([t]) => t === 0x51);
      if (max.length === 0) return { kind: 'invalid', why: 'no maximum length' };
      if (max.some(([, v]) => v.length !== 4)) return { kind: 'invalid', why: 'maximum length not 4 bytes' };
    } else {
      unsure ??= `unknown item type 0x${type.toString(16)}`;
    }
  }
  if (app === 0) return { kind: 'invalid', why: 'no application context' };
  if (contexts.size === 0) return { kind: 'invalid', why: 'no presentation context' };
  if (contexts.size > 128) return { kind: 'invalid', why: 'more than 128 presentation contexts' };
  if (user === 0) return { kind: 'invalid', why: 'no user information' };
  if (app > 1 || user > 1) unsure ??= 'repeated item';
  if (unsure) return { kind: 'unsure', why: unsure, content: { contexts } };
  return { kind: 'valid', content: { contexts } };
}

export interface StreamVerdict {
  /** The C-STORE's data set ended with a last fragment and nothing PS3.8/PS3.7 forbids came before. */
  storeComplete: boolean;
  /** Why not, when not. */
  why?: string;
  /** The stream did something the oracle cannot judge (another command) after which it stopped looking. */
  unsure?: string;
}

const C_STORE_RQ = 0x0001;

/** The command set's elements by element number, or undefined when they do not tile the bytes. */
function commandElements(buf: Buffer): Map<number, Buffer> | undefined {
  const out = new Map<number, Buffer>();
  let at = 0;
  while (at < buf.length) {
    if (at + 8 > buf.length || buf.readUInt16LE(at) !== 0) return undefined;
    const len = buf.readUInt32LE(at + 4);
    if (at + 8 + len > buf.length) return undefined;
    out.set(buf.readUInt16LE(at + 2), buf.subarray(at + 8, at + 8 + len));
    at += 8 + len;
  }
  return out;
}

const UID_GRAMMAR = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

/**
 * Walks what the peer sent after its A-ASSOCIATE-RQ. `accepted` are the presentation contexts the node accepted
 * (ID -> abstract syntax), `maxLength` the maximum length it announced (0: none).
 */
export function checkStream(stream: Buffer, accepted: Map<number, string>, maxLength: number): StreamVerdict {
  let at = 0;
  let command: { pc: number; parts: Buffer[] } | undefined;
  let data: { pc: number } | undefined;
  const fail = (why: string): StreamVerdict => ({ storeComplete: false, why });
  while (at < stream.length) {
    if (at + 6 > stream.length) return fail('the stream ends inside a PDU header');
    const type = stream[at]!;
    const length = stream.readUInt32BE(at + 2);
    if (at + 6 + length > stream.length) return fail('the stream ends inside a PDU');
    const body = stream.subarray(at + 6, at + 6 + length);
    at += 6 + length;
    if (type !== 0x04) return fail(`PDU type 0x${type.toString(16)} before the data set ended`);
    if (length === 0) return fail('empty P-DATA-TF');
    if (maxLength > 0 && length > maxLength) return fail('P-DATA-TF longer than the maximum length');
    let p = 0;
    while (p < body.length) {
      if (p + 6 > body.length) return fail('stray bytes after the last PDV');
      const len = body.readUInt32BE(p);
      if (len < 2 || p + 4 + len > body.length) return fail('PDV length inconsistent with its PDU');
      const pc = body[p + 4]!;
      const control = body[p + 5]!;
      const value = body.subarray(p + 6, p + 4 + len);
      p += 4 + len;
      if (!accepted.has(pc)) return fail('PDV on a context not accepted');
      if (control & 0xfc) return { storeComplete: false, unsure: 'reserved message control bits' };
      const isCommand = (control & 1) === 1;
      const last = (control & 2) === 2;
      if (data) {
        if (isCommand) return fail('a command fragment inside a data set');
        if (pc !== data.pc) return fail('data set fragments on two contexts');
        if (last) return restOfPdu(body.subarray(p));
        continue;
      }
      if (!isCommand) return fail('a data set fragment without a command');
      if (command && command.pc !== pc) return fail('command fragments on two contexts');
      command = { pc, parts: [...(command?.parts ?? []), value] };
      if (!last) continue;
      const els = commandElements(Buffer.concat(command.parts));
      if (!els) return fail('command set elements overrun it');
      const field = els.get(0x0100);
      if (!field || field.length !== 2 || field.readUInt16LE(0) !== C_STORE_RQ)
        return { storeComplete: false, unsure: 'not a C-STORE-RQ' };
      const sopClass = text(els.get(0x0002) ?? Buffer.alloc(0)).replace(/\0+$/, '');
      if (sopClass !== accepted.get(pc)) return fail('command SOP class differs from its context');
      const uid = text(els.get(0x1000) ?? Buffer.alloc(0)).replace(/\0+$/, '');
      if (!UID_GRAMMAR.test(uid) || uid.length > 64) return fail('no valid Affected SOP Instance UID');
      const dst = els.get(0x0800);
      if (!dst || dst.length !== 2 || dst.readUInt16LE(0) === 0x0101) return fail('C-STORE without a data set');
      data = { pc };
    }
  }
  return fail('the data set has no last fragment');
}

/**
 * After the store's last fragment, what follows cannot undo it, except the rest of the same PDU: when that is
 * malformed, a node that checks whole PDUs first may refuse the store, one that streams PDVs may not: unsure.
 */
function restOfPdu(inPdu: Buffer): StreamVerdict {
  let p = 0;
  while (p < inPdu.length) {
    if (p + 6 > inPdu.length) return { storeComplete: false, unsure: 'malformed PDV after the last fragment' };
    const len = inPdu.readUInt32BE(p);
    if (len < 2 || p + 4 + len > inPdu.length)
      return { storeComplete: false, unsure: 'malformed PDV after the last fragment' };
    p += 4 + len;
  }
  return { storeComplete: true };
}
