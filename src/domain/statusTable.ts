/**
 * Owns what a DIMSE status means: code -> (category, text), per service (PS3.7 Annex C, PS3.4 B, C and J), as
 * pynetdicom's status tables do. Every formatter, failure test and metric label of scannode reads it. Pure.
 */
import { hex } from './status.js';

export type StatusCategory = 'success' | 'warning' | 'failure' | 'cancel' | 'pending';
export type DimseService =
  'C-STORE' | 'C-FIND' | 'C-MOVE' | 'C-ECHO' | 'N-CREATE' | 'N-SET' | 'N-ACTION' | 'N-EVENT-REPORT';

export interface StatusInfo {
  category: StatusCategory;
  text: string;
}

type Table = Record<number, StatusInfo>;
const ok = (text: string): StatusInfo => ({ category: 'success', text });
const warn = (text: string): StatusInfo => ({ category: 'warning', text });
const fail = (text: string): StatusInfo => ({ category: 'failure', text });

/** PS3.7 C: statuses every service may answer. */
const GENERAL: Table = {
  0x0000: ok('success'),
  0x0001: warn('requested optional attributes are not supported'),
  0x0107: warn('attribute list error'),
  0x0116: warn('attribute value out of range'),
  0x0105: fail('no such attribute'),
  0x0106: fail('invalid attribute value'),
  0x0110: fail('processing failure'),
  0x0111: fail('duplicate SOP instance'),
  0x0112: fail('no such object instance'),
  0x0113: fail('no such event type'),
  0x0114: fail('no such argument'),
  0x0115: fail('invalid argument value'),
  0x0117: fail('invalid object instance'),
  0x0118: fail('no such SOP class'),
  0x0119: fail('class-instance conflict'),
  0x0120: fail('missing attribute'),
  0x0121: fail('missing attribute value'),
  0x0122: fail('SOP class not supported'),
  0x0123: fail('no such action'),
  0x0124: fail('not authorized'),
  0x0210: fail('duplicate invocation'),
  0x0211: fail('unrecognized operation'),
  0x0212: fail('mistyped argument'),
  0x0213: fail('resource limitation'),
  0xfe00: { category: 'cancel', text: 'cancelled' },
  0xff00: { category: 'pending', text: 'pending' },
  0xff01: { category: 'pending', text: 'pending, optional keys not supported' },
};

/** Service-specific codes (PS3.4 B.2.3, C.4.1.1.4, C.4.2.1.5) and the ones scannode answers C-STORE with. */
const BY_SERVICE: Partial<Record<DimseService, Table>> = {
  'C-STORE': {
    0xa700: fail('out of resources'),
    0xa900: fail('data set does not match SOP class'),
    0xc000: fail('cannot understand'),
    0xc001: fail('data set is truncated'),
    0xc002: fail('invalid UID'),
    0xc003: fail('same SOP Instance UID with different content'),
    0xb000: warn('coercion of data elements'),
    0xb006: warn('elements discarded'),
    0xb007: warn('data set does not match SOP class'),
  },
  'C-FIND': {
    0xa700: fail('out of resources'),
    0xa900: fail('identifier does not match SOP class'),
  },
  'C-MOVE': {
    0xa701: fail('out of resources'),
    0xa702: fail('out of resources'),
    0xa801: fail('move destination unknown'),
    0xa900: fail('identifier does not match SOP class'),
    0xb000: warn('sub-operations complete with failures'),
  },
};

/** Codes outside the tables, by their range (PS3.7 C.1): Axxx refused, Bxxx warning, Cxxx error. */
function byRange(status: number, service?: DimseService): StatusInfo {
  if (status >= 0xa700 && status <= 0xa7ff) return fail('out of resources');
  if (status >= 0xb000 && status <= 0xbfff) {
    return warn(service === 'C-MOVE' ? 'sub-operations complete with failures' : 'warning');
  }
  if (status >= 0xc000 && status <= 0xcfff)
    return fail(service === 'C-STORE' ? 'cannot understand' : 'unable to process');
  return fail('failed');
}

/** What a status means, for the service that answered it (without one: the general meaning). */
export function statusInfo(status: number, service?: DimseService): StatusInfo {
  const code = status & 0xffff;
  return (service && BY_SERVICE[service]?.[code]) ?? GENERAL[code] ?? byRange(code, service);
}

export function isPending(status: number, service?: DimseService): boolean {
  return statusInfo(status, service).category === 'pending';
}

/** PS3.7 C: failure and cancel end an operation unsuccessfully. */
export function isFailure(status: number, service?: DimseService): boolean {
  const c = statusInfo(status, service).category;
  return c === 'failure' || c === 'cancel';
}

export function isWarning(status: number, service?: DimseService): boolean {
  return statusInfo(status, service).category === 'warning';
}

/** The status in words: its text only, e.g. "move destination unknown". */
export function statusText(status: number, service?: DimseService): string {
  return statusInfo(status, service).text;
}

/** The status as logs and errors show it, e.g. "0xA801 move destination unknown". */
export function describeStatus(status: number, service?: DimseService): string {
  return `${hex(status)} ${statusText(status, service)}`;
}

/** The status as a bounded metric label value: 4 lower-case hex digits, e.g. "a700". */
export function statusLabel(status: number): string {
  return (status & 0xffff).toString(16).padStart(4, '0');
}
