/** Owns turning configured remotes into what the pipeline needs: the remote a scan retrieves from, as an SCU peer. */
import type { Config } from '../config/schema.js';
import type { ScuPeer } from '../dimse/scuAssociation.js';
import { remoteNamed } from '../domain/remotes.js';

/** A scan as far as its source matters: the remote named at request time (absent or null: the scanner). */
export interface ScanSourceLike {
  remote?: string | null;
}

/**
 * The peer a scan is queried and retrieved from: its named remote (which must have roles.retrieve), else the
 * scanner. Throws a RemoteError naming the remotes there are when the name is unknown or may not be retrieved from.
 */
export function peerForScan(config: Pick<Config, 'remotes' | 'scanner'>, scan: ScanSourceLike): ScuPeer {
  const name = scan.remote ?? config.scanner.name;
  const r = name === config.scanner.name ? config.scanner : remoteNamed(config.remotes, name, 'retrieve');
  return { aeTitle: r.aeTitle, host: r.host, port: r.port, ...(r.tls ? { tls: r.tls } : {}) };
}

/**
 * Why a request may not name this source remote, or undefined when it may (absent, the scanner, or a remote with
 * roles.retrieve). Used by the request rules of files, the API and the CLI alike.
 */
export function sourceRemoteProblem(
  remotes: Config['remotes'],
  scannerName: string,
  remote: string | null | undefined,
): string | undefined {
  if (remote === null || remote === undefined || remote === scannerName) return undefined;
  try {
    remoteNamed(remotes, remote, 'retrieve');
    return undefined;
  } catch (err) {
    return `source ${(err as Error).message}`;
  }
}
