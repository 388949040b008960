/**
 * The A-ASSOCIATE-RQ and A-ASSOCIATE-AC PDUs (PS3.8 9.3.2 / 9.3.3, PS3.7 annex D.3.3): decode and encode, for either
 * role. Decoding checks structure only (every item and sub-item inside its container, fixed sizes, no singleton item
 * twice) and throws PduError for what cannot be parsed; what the values mean is the ACSE's to judge (acse.ts). Pure.
 */
import { AbortReason, PduError, PduType, PDU_HEADER } from './pdu.js';

export const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';

export interface PresentationContextRq {
  id: number;
  /** Undefined when the item had no abstract syntax sub-item. */
  abstractSyntax: string | undefined;
  transferSyntaxes: string[];
}

export interface PresentationContextAc {
  id: number;
  /** 0 acceptance, 1 user rejection, 2 no reason, 3 abstract syntax not supported, 4 transfer syntaxes not supported. */
  result: number;
  transferSyntax: string;
}

export interface RoleSelection {
  sopClassUid: string;
  scu: boolean;
  scp: boolean;
}

export interface UserInformation {
  /** Maximum Length Received (0: no limit); undefined when the sub-item is absent. */
  maxLength: number | undefined;
  implementationClassUid: string | undefined;
  implementationVersionName: string | undefined;
  asyncOps: { invoked: number; performed: number } | undefined;
  roleSelections: RoleSelection[];
  /** Sub-items kept as they came (extended negotiation, user identity, unknown types). */
  other: Array<{ type: number; value: Buffer }>;
}

interface AssociateCommon {
  protocolVersion: number;
  /** As on the wire (16 characters, padding kept): the ACSE validates and trims. */
  calledAe: string;
  callingAe: string;
  applicationContext: string | undefined;
  userInfo: UserInformation | undefined;
}

export interface AssociateRq extends AssociateCommon {
  presentationContexts: PresentationContextRq[];
}

export interface AssociateAc extends AssociateCommon {
  presentationContexts: PresentationContextAc[];
}

const ITEM = { AppContext: 0x10, PcRq: 0x20, PcAc: 0x21, Abstract: 0x30, Transfer: 0x40, UserInfo: 0x50 } as const;
const SUB = { MaxLength: 0x51, ImplUid: 0x52, Async: 0x53, Role: 0x54, ImplVersion: 0x55 } as const;
const FIXED_FIELDS = 68;

const invalid = (msg: string) => new PduError(AbortReason.InvalidPduParameter, msg);
const unexpected = (msg: string) => new PduError(AbortReason.UnexpectedPduParameter, msg);

/** Text of a UID or name field: trailing NUL / space padding dropped. */
function text(buf: Buffer): string {
  return buf.toString('latin1').replace(/[\0 ]+$/, '');
}

/** Walks the items of `buf` (1-byte type, reserved, 2-byte length): each must end inside `buf`. */
function* items(buf: Buffer, what: string): Generator<{ type: number; value: Buffer }> {
  let at = 0;
  while (at < buf.length) {
    if (at + 4 > buf.length) throw invalid(`${what}: an item header runs past the end`);
    const type = buf[at]!;
    const length = buf.readUInt16BE(at + 2);
    const end = at + 4 + length;
    if (end > buf.length) throw invalid(`${what}: item 0x${type.toString(16)} of ${length} bytes runs past the end`);
    yield { type, value: buf.subarray(at + 4, end) };
    at = end;
  }
}

function decodeCommon(body: Buffer, kind: string): { common: AssociateCommon; variable: Buffer } {
  if (body.length < FIXED_FIELDS) throw invalid(`${kind} shorter than its fixed fields (${body.length} bytes)`);
  return {
    common: {
      protocolVersion: body.readUInt16BE(0),
      calledAe: body.toString('latin1', 4, 20),
      callingAe: body.toString('latin1', 20, 36),
      applicationContext: undefined,
      userInfo: undefined,
    },
    variable: body.subarray(FIXED_FIELDS),
  };
}

function decodeUserInfo(value: Buffer): UserInformation {
  const ui: UserInformation = {
    maxLength: undefined,
    implementationClassUid: undefined,
    implementationVersionName: undefined,
    asyncOps: undefined,
    roleSelections: [],
    other: [],
  };
  const once = (present: unknown, what: string) => {
    if (present !== undefined) throw unexpected(`User Information: a second ${what} sub-item`);
  };
  for (const sub of items(value, 'User Information')) {
    switch (sub.type) {
      case SUB.MaxLength:
        once(ui.maxLength, 'Maximum Length');
        if (sub.value.length !== 4) throw invalid(`Maximum Length sub-item of ${sub.value.length} bytes`);
        ui.maxLength = sub.value.readUInt32BE(0);
        break;
      case SUB.ImplUid:
        once(ui.implementationClassUid, 'Implementation Class UID');
        ui.implementationClassUid = text(sub.value);
        break;
      case SUB.ImplVersion:
        once(ui.implementationVersionName, 'Implementation Version Name');
        ui.implementationVersionName = text(sub.value);
        break;
      case SUB.Async:
        once(ui.asyncOps, 'Asynchronous Operations Window');
        if (sub.value.length !== 4) throw invalid(`Asynchronous Operations sub-item of ${sub.value.length} bytes`);
        ui.asyncOps = { invoked: sub.value.readUInt16BE(0), performed: sub.value.readUInt16BE(2) };
        break;
      case SUB.Role: {
        if (sub.value.length < 2) throw invalid('Role Selection sub-item without its UID length');
        const uidLength = sub.value.readUInt16BE(0);
        if (2 + uidLength + 2 !== sub.value.length) throw invalid('Role Selection sub-item length inconsistent');
        ui.roleSelections.push({
          sopClassUid: text(sub.value.subarray(2, 2 + uidLength)),
          scu: sub.value[2 + uidLength] === 1,
          scp: sub.value[3 + uidLength] === 1,
        });
        break;
      }
      default:
        ui.other.push({ type: sub.type, value: Buffer.from(sub.value) });
    }
  }
  return ui;
}

/** Items shared by both PDUs; `context` handles the presentation context items of the PDU's own kind. */
function decodeItems(
  common: AssociateCommon,
  variable: Buffer,
  kind: string,
  context: (item: Buffer) => void,
  contextType: number,
): void {
  for (const item of items(variable, kind)) {
    if (item.type === ITEM.AppContext) {
      if (common.applicationContext !== undefined) throw unexpected(`${kind}: a second Application Context item`);
      common.applicationContext = text(item.value);
    } else if (item.type === contextType) {
      context(item.value);
    } else if (item.type === ITEM.UserInfo) {
      if (common.userInfo) throw unexpected(`${kind}: a second User Information item`);
      common.userInfo = decodeUserInfo(item.value);
    } else if (item.type === ITEM.PcRq || item.type === ITEM.PcAc) {
      throw unexpected(`${kind}: presentation context item of type 0x${item.type.toString(16)}`);
    }
    // Other item types are reserved: ignored, as PS3.8 9.3.1 asks of unknown fields.
  }
}

export function decodeAssociateRq(body: Buffer): AssociateRq {
  const { common, variable } = decodeCommon(body, 'A-ASSOCIATE-RQ');
  const presentationContexts: PresentationContextRq[] = [];
  decodeItems(
    common,
    variable,
    'A-ASSOCIATE-RQ',
    (value) => {
      if (value.length < 4) throw invalid(`presentation context item of ${value.length} bytes`);
      const pc: PresentationContextRq = { id: value[0]!, abstractSyntax: undefined, transferSyntaxes: [] };
      for (const sub of items(value.subarray(4), `presentation context ${pc.id}`)) {
        if (sub.type === ITEM.Abstract) {
          if (pc.abstractSyntax !== undefined) throw unexpected(`presentation context ${pc.id}: two abstract syntaxes`);
          pc.abstractSyntax = text(sub.value);
        } else if (sub.type === ITEM.Transfer) {
          pc.transferSyntaxes.push(text(sub.value));
        } else {
          throw unexpected(`presentation context ${pc.id}: sub-item 0x${sub.type.toString(16)}`);
        }
      }
      presentationContexts.push(pc);
    },
    ITEM.PcRq,
  );
  return { ...common, presentationContexts };
}

export function decodeAssociateAc(body: Buffer): AssociateAc {
  const { common, variable } = decodeCommon(body, 'A-ASSOCIATE-AC');
  const presentationContexts: PresentationContextAc[] = [];
  decodeItems(
    common,
    variable,
    'A-ASSOCIATE-AC',
    (value) => {
      if (value.length < 4) throw invalid(`presentation context item of ${value.length} bytes`);
      const pc: PresentationContextAc = { id: value[0]!, result: value[2]!, transferSyntax: '' };
      for (const sub of items(value.subarray(4), `presentation context ${pc.id}`)) {
        if (sub.type !== ITEM.Transfer)
          throw unexpected(`presentation context ${pc.id}: sub-item 0x${sub.type.toString(16)}`);
        pc.transferSyntax = text(sub.value);
      }
      presentationContexts.push(pc);
    },
    ITEM.PcAc,
  );
  return { ...common, presentationContexts };
}

// --- encoding ------------------------------------------------------------------------------------------------------

function item(type: number, value: Buffer): Buffer {
  if (value.length > 0xffff) throw new RangeError(`item 0x${type.toString(16)} too long`);
  const head = Buffer.alloc(4);
  head[0] = type;
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value]);
}

const ascii = (s: string) => Buffer.from(s, 'latin1');

function aeField(ae: string): Buffer {
  return ascii(ae.slice(0, 16).padEnd(16, ' '));
}

function userInfoItem(ui: UserInformation): Buffer {
  const subs: Buffer[] = [];
  if (ui.maxLength !== undefined) {
    const v = Buffer.alloc(4);
    v.writeUInt32BE(ui.maxLength);
    subs.push(item(SUB.MaxLength, v));
  }
  if (ui.implementationClassUid) subs.push(item(SUB.ImplUid, ascii(ui.implementationClassUid)));
  if (ui.asyncOps) {
    const v = Buffer.alloc(4);
    v.writeUInt16BE(ui.asyncOps.invoked, 0);
    v.writeUInt16BE(ui.asyncOps.performed, 2);
    subs.push(item(SUB.Async, v));
  }
  for (const r of ui.roleSelections) {
    const uid = ascii(r.sopClassUid);
    const v = Buffer.alloc(4 + uid.length);
    v.writeUInt16BE(uid.length, 0);
    uid.copy(v, 2);
    v[2 + uid.length] = r.scu ? 1 : 0;
    v[3 + uid.length] = r.scp ? 1 : 0;
    subs.push(item(SUB.Role, v));
  }
  if (ui.implementationVersionName) subs.push(item(SUB.ImplVersion, ascii(ui.implementationVersionName)));
  for (const o of ui.other) subs.push(item(o.type, o.value));
  return item(ITEM.UserInfo, Buffer.concat(subs));
}

function associatePdu(type: number, common: AssociateCommon, contextItems: Buffer[]): Buffer {
  const fixed = Buffer.alloc(FIXED_FIELDS);
  fixed.writeUInt16BE(common.protocolVersion, 0);
  aeField(common.calledAe).copy(fixed, 4);
  aeField(common.callingAe).copy(fixed, 20);
  const parts = [
    fixed,
    item(ITEM.AppContext, ascii(common.applicationContext ?? APPLICATION_CONTEXT)),
    ...contextItems,
  ];
  if (common.userInfo) parts.push(userInfoItem(common.userInfo));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(PDU_HEADER);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

export function encodeAssociateRq(rq: AssociateRq): Buffer {
  const contexts = rq.presentationContexts.map((pc) =>
    item(
      ITEM.PcRq,
      Buffer.concat([
        Buffer.from([pc.id, 0, 0, 0]),
        item(ITEM.Abstract, ascii(pc.abstractSyntax ?? '')),
        ...pc.transferSyntaxes.map((ts) => item(ITEM.Transfer, ascii(ts))),
      ]),
    ),
  );
  return associatePdu(PduType.AssociateRq, rq, contexts);
}

export function encodeAssociateAc(ac: AssociateAc): Buffer {
  const contexts = ac.presentationContexts.map((pc) =>
    item(
      ITEM.PcAc,
      Buffer.concat([Buffer.from([pc.id, 0, pc.result, 0]), item(ITEM.Transfer, ascii(pc.transferSyntax))]),
    ),
  );
  return associatePdu(PduType.AssociateAc, ac, contexts);
}
