/** Owns how raw file-name bytes (newlines, bytes that are not UTF-8) become text and back again, losslessly. Pure. */

const fatal = new TextDecoder('utf-8', { fatal: true });

function escape(byte: number): string {
  return `\\x${byte.toString(16).toUpperCase().padStart(2, '0')}`;
}

/** Length of the UTF-8 sequence a lead byte starts, or 0 when it cannot start one. */
function sequenceLength(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * Text for a file name or path as the kernel has it. Valid UTF-8 stays as it is; control characters (C0, DEL, C1),
 * bytes that are not UTF-8 and the backslash itself become `\xNN`, so that `nameBytes` gives the very bytes back and a
 * name with a newline stays one line in a log, a reason file or the API.
 */
export function nameText(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i]!;
    if (b < 0x80) {
      out += b < 0x20 || b === 0x7f || b === 0x5c ? escape(b) : String.fromCharCode(b);
      i++;
      continue;
    }
    const n = sequenceLength(b);
    let ch: string | undefined;
    if (n && i + n <= bytes.length) {
      try {
        ch = fatal.decode(bytes.subarray(i, i + n));
      } catch {
        ch = undefined;
      }
    }
    const code = ch?.codePointAt(0);
    if (ch === undefined || code === undefined || (code >= 0x80 && code <= 0x9f)) {
      out += escape(b);
      i++;
      continue;
    }
    out += ch;
    i += n;
  }
  return out;
}

/** The bytes `nameText` was made from. A backslash not followed by `xNN` is taken as itself. */
export function nameBytes(text: string): Buffer {
  const parts: Buffer[] = [];
  let plain = '';
  for (let i = 0; i < text.length; i++) {
    const m = text[i] === '\\' ? /^\\x([0-9A-Fa-f]{2})/.exec(text.slice(i, i + 4)) : null;
    if (!m) {
      plain += text[i];
      continue;
    }
    if (plain) parts.push(Buffer.from(plain, 'utf8'));
    plain = '';
    parts.push(Buffer.from([parseInt(m[1]!, 16)]));
    i += 3;
  }
  if (plain) parts.push(Buffer.from(plain, 'utf8'));
  return Buffer.concat(parts);
}

/** The text form of a name given as ordinary text (a path typed by a person, JSON): its UTF-8 bytes, escaped. */
export function textOfName(name: string): string {
  return nameText(Buffer.from(name, 'utf8'));
}
