/** Owns `scannode remotes [--echo]`: the named DICOM nodes of the config, one line each, optionally C-ECHOed. */
import type { Config } from './config/schema.js';
import { echo } from './dimse/echo.js';

function roles(r: Config['remotes'][string]): string {
  return (['send', 'retrieve', 'store'] as const).filter((k) => r.roles[k]).join(',') || '-';
}

/** Prints the remotes; with `withEcho`, C-ECHOes each (as `callingAe`). Resolves false when an echo failed. */
export async function runRemotesCommand(
  config: Config,
  withEcho: boolean,
  out: NodeJS.WritableStream,
  timeoutMs = 10_000,
): Promise<boolean> {
  const entries = Object.entries(config.remotes);
  if (!entries.length) {
    out.write('no remotes configured\n');
    return true;
  }
  let ok = true;
  for (const [name, r] of entries) {
    const line =
      `${name === config.scanner.name ? '*' : ' '} ${name.padEnd(16)} ${r.aeTitle}@${r.host}:${r.port}` +
      `${r.tls ? ' (TLS)' : ''}  roles=${roles(r)}`;
    if (!withEcho) {
      out.write(`${line}\n`);
      continue;
    }
    try {
      const ms = await echo(r, config.dicom.aeTitle, timeoutMs);
      out.write(`${line}  C-ECHO ok (${ms} ms)\n`);
    } catch (err) {
      ok = false;
      out.write(`${line}  C-ECHO failed: ${(err as Error).message}\n`);
    }
  }
  out.write('* the scanner\n');
  return ok;
}
