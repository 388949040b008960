/**
 * The DICOM UID grammar (PS3.5 9.1): components of digits separated by dots, no leading zero in a component
 * of more than one digit, at most 64 characters. Only a UID that passes this may become part of a path.
 */
import { randomUUID } from 'node:crypto';
const UID_RE = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/;

export function isValidUid(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 64 && UID_RE.test(value);
}

/** Trims the NUL / space padding that UI values carry on the wire. */
export function cleanUid(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const v = value.replace(/[\0 ]+$/g, '').trim();
  return v.length ? v : undefined;
}

export class InvalidUidError extends Error {
  constructor(
    readonly attribute: string,
    readonly value: unknown,
  ) {
    super(`${attribute} ${JSON.stringify(value)} is not a valid DICOM UID`);
  }
}

export function requireUid(attribute: string, value: unknown): string {
  const v = cleanUid(value);
  if (!isValidUid(v)) throw new InvalidUidError(attribute, value);
  return v;
}

/** A new UID under the UUID root (PS3.5 B.2): an MPPS the SCU left to us, a storage commitment transaction. */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}
