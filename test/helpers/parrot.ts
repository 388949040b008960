/**
 * The raw-socket peer's PDU builders (PS3.8 section 9.3, PS3.7 annex D and E), like pynetdicom's tests/parrot.py:
 * every PDU type and item, built from a plain spec with knobs that break each field (lengths, reserved bytes, types,
 * item order). Test code only: it knows nothing of scannode's implementation and speaks bytes to a port.
 */

export const PDU = { RQ: 0x01, AC: 0x02, RJ: 0x03, PDATA: 0x04, RELEASE_RQ: 0x05, RELEASE_RP: 0x06, ABORT: 0x07 };
export const ITEM = {
  APP_CONTEXT: 0x10,
  PC_RQ: 0x20,
  PC_AC: 0x21,
  ABSTRACT: 0x30,
  TRANSFER: 0x40,
  USER_INFO: 0x50,
  MAX_LENGTH: 0x51,
  IMPL_CLASS: 0x52,
  ASYNC: 0x53,
  ROLE: 0x54,
  IMPL_VERSION: 0x55,
};
export const UID = {
  appContext: '1.2.840.10008.3.1.1.1',
  verification: '1.2.840.10008.1.1',
  mrStorage: '1.2.840.10008.5.1.4.1.1.4',
  ctStorage: '1.2.840.10008.5.1.4.1.1.2',
  mpps: '1.2.840.10008.3.1.2.3.3',
  patientRootFind: '1.2.840.10008.5.1.4.1.2.1.1',
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  implClass: '1.2.826.0.1.3680043.10.1561.99',
};

/** Knobs shared by every PDU and item: the length written is the true one plus `lengthDelta`, or `length` outright. */
export interface LengthKnobs {
  lengthDelta?: number;
  length?: number;
  /** Value of the reserved byte after the type (PS3.8: sent as 00H, never tested on receipt). */
  reserved?: number;
}

/** A PDU: type, reserved, 4-byte big-endian length, body. */
export function pdu(type: number, body: Buffer, k: LengthKnobs = {}): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head[1] = k.reserved ?? 0;
  head.writeUInt32BE(u32(k.length ?? body.length + (k.lengthDelta ?? 0)), 2);
  return Buffer.concat([head, body]);
}

/** An item or sub-item: type, reserved, 2-byte big-endian length, value. */
export function item(type: number, value: Buffer | string, k: LengthKnobs = {}): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  const head = Buffer.alloc(4);
  head[0] = type;
  head[1] = k.reserved ?? 0;
  head.writeUInt16BE((k.length ?? v.length + (k.lengthDelta ?? 0)) & 0xffff, 2);
  return Buffer.concat([head, v]);
}

function u32(n: number): number {
  return ((n % 0x100000000) + 0x100000000) % 0x100000000;
}

/** An AE title field: 16 bytes, space padded (a Buffer is taken as is, padded or cut to 16). */
export function aeField(ae: string | Buffer): Buffer {
  const b = Buffer.alloc(16, 0x20);
  (typeof ae === 'string' ? Buffer.from(ae, 'latin1') : ae).copy(b, 0, 0, 16);
  return b;
}

export interface PcSpec {
  id: number;
  /** undefined: none sent; a list sends several abstract syntax sub-items. */
  abstract?: string | string[];
  transfer?: string[];
  /** Raw sub-items appended inside the item. */
  extra?: Buffer[];
  itemKnobs?: LengthKnobs;
}

export interface UserInfoSpec {
  /** null: no Maximum Length sub-item. */
  maxLength?: number | null;
  maxLengthKnobs?: LengthKnobs;
  /** Raw value of the Maximum Length sub-item (to send a wrong size). */
  maxLengthRaw?: Buffer;
  implClassUid?: string | null;
  implVersion?: string | null;
  /** Raw sub-items appended (unknown types, role selection...). */
  extra?: Buffer[];
  itemKnobs?: LengthKnobs;
}

export interface RqSpec {
  protocolVersion?: number;
  called?: string | Buffer;
  calling?: string | Buffer;
  /** Fill of the reserved fields (bytes 9-10 and 43-74). */
  reservedFill?: number;
  /** null: no Application Context item. */
  appContext?: string | null;
  appContextKnobs?: LengthKnobs;
  contexts?: PcSpec[];
  /** null: no User Information item. */
  userInfo?: UserInfoSpec | null;
  /** Raw items appended after the user information item (or in its place, with userInfo null). */
  extraItems?: Buffer[];
  /** Items in this order instead of application context, contexts, user information. */
  order?: Array<'app' | 'pcs' | 'user' | 'extra'>;
  pduKnobs?: LengthKnobs;
}

export const STORE_CONTEXTS: PcSpec[] = [
  { id: 1, abstract: UID.mrStorage, transfer: [UID.explicitLE, UID.implicitLE] },
  { id: 3, abstract: UID.verification, transfer: [UID.implicitLE] },
];

export function presentationContext(pc: PcSpec): Buffer {
  const abstracts = pc.abstract === undefined ? [] : Array.isArray(pc.abstract) ? pc.abstract : [pc.abstract];
  const body = Buffer.concat([
    Buffer.from([pc.id & 0xff, 0, 0, 0]),
    ...abstracts.map((a) => item(ITEM.ABSTRACT, a)),
    ...(pc.transfer ?? []).map((t) => item(ITEM.TRANSFER, t)),
    ...(pc.extra ?? []),
  ]);
  return item(ITEM.PC_RQ, body, pc.itemKnobs);
}

export function userInformation(u: UserInfoSpec): Buffer {
  const max = Buffer.alloc(4);
  if (u.maxLength !== undefined && u.maxLength !== null) max.writeUInt32BE(u32(u.maxLength));
  else max.writeUInt32BE(16384);
  const subs = [
    u.maxLength === null ? undefined : item(ITEM.MAX_LENGTH, u.maxLengthRaw ?? max, u.maxLengthKnobs),
    u.implClassUid === null ? undefined : item(ITEM.IMPL_CLASS, u.implClassUid ?? UID.implClass),
    u.implVersion === null ? undefined : item(ITEM.IMPL_VERSION, u.implVersion ?? 'PARROT_1'),
    ...(u.extra ?? []),
  ].filter((b): b is Buffer => b !== undefined);
  return item(ITEM.USER_INFO, Buffer.concat(subs), u.itemKnobs);
}

/** An A-ASSOCIATE-RQ; every field from the spec, defaults make a valid request to SCANNODE. */
export function associateRq(spec: RqSpec = {}): Buffer {
  const fixed = Buffer.alloc(68, spec.reservedFill ?? 0);
  fixed.writeUInt16BE(spec.protocolVersion ?? 1, 0);
  aeField(spec.called ?? 'SCANNODE').copy(fixed, 4);
  aeField(spec.calling ?? 'PARROT').copy(fixed, 20);
  const parts: Record<'app' | 'pcs' | 'user' | 'extra', Buffer[]> = {
    app:
      spec.appContext === null ? [] : [item(ITEM.APP_CONTEXT, spec.appContext ?? UID.appContext, spec.appContextKnobs)],
    pcs: (spec.contexts ?? STORE_CONTEXTS).map(presentationContext),
    user: spec.userInfo === null ? [] : [userInformation(spec.userInfo ?? {})],
    extra: spec.extraItems ?? [],
  };
  const order = spec.order ?? ['app', 'pcs', 'user', 'extra'];
  return pdu(PDU.RQ, Buffer.concat([fixed, ...order.flatMap((k) => parts[k])]), spec.pduKnobs);
}

/** An A-ASSOCIATE-AC as an SCU would never send it to an SCP (for the "unexpected PDU" cases). */
export function associateAc(pcs: Array<{ id: number; result: number; transfer: string }>): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(1, 0);
  aeField('SCANNODE').copy(fixed, 4);
  aeField('PARROT').copy(fixed, 20);
  const items = pcs.map((p) =>
    item(ITEM.PC_AC, Buffer.concat([Buffer.from([p.id, 0, p.result, 0]), item(ITEM.TRANSFER, p.transfer)])),
  );
  return pdu(PDU.AC, Buffer.concat([fixed, item(ITEM.APP_CONTEXT, UID.appContext), ...items, userInformation({})]));
}

export function associateRj(result: number, source: number, reason: number): Buffer {
  return pdu(PDU.RJ, Buffer.from([0, result, source, reason]));
}
export function releaseRq(k: LengthKnobs = {}, body = Buffer.alloc(4)): Buffer {
  return pdu(PDU.RELEASE_RQ, body, k);
}
export function releaseRp(k: LengthKnobs = {}): Buffer {
  return pdu(PDU.RELEASE_RP, Buffer.alloc(4), k);
}
export function abortPdu(source = 0, reason = 0, k: LengthKnobs = {}): Buffer {
  return pdu(PDU.ABORT, Buffer.from([0, 0, source, reason]), k);
}

/** One PDV item: 4-byte length (PC ID + control + data, unless knobs say otherwise), PC ID, control header, data. */
export function pdv(pcId: number, control: number, data: Buffer, k: { lengthDelta?: number; length?: number } = {}) {
  const head = Buffer.alloc(6);
  head.writeUInt32BE(u32(k.length ?? data.length + 2 + (k.lengthDelta ?? 0)), 0);
  head[4] = pcId & 0xff;
  head[5] = control & 0xff;
  return Buffer.concat([head, data]);
}

/** Message control header bits (PS3.8 E.2). */
export const MCH = { DATA: 0x00, COMMAND: 0x01, LAST: 0x02, COMMAND_LAST: 0x03, DATA_LAST: 0x02 };

export function pdata(pdvs: Buffer[], k: LengthKnobs = {}): Buffer {
  return pdu(PDU.PDATA, Buffer.concat(pdvs), k);
}

/** A message part (command or data set) cut into P-DATA-TF PDUs of one PDV each, `chunk` data bytes per PDV. */
export function fragments(pcId: number, command: boolean, data: Buffer, chunk = 16372): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length || at === 0; at += chunk) {
    const piece = data.subarray(at, at + chunk);
    const last = at + chunk >= data.length;
    out.push(pdata([pdv(pcId, (command ? MCH.COMMAND : MCH.DATA) | (last ? MCH.LAST : 0), piece)]));
    if (data.length === 0) break;
  }
  return out;
}
