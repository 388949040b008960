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

/** What is known of a remote's reachability: from associations it opened to us and our C-ECHO / SCU outcomes. */
export interface RemoteState {
  /** The last outcome was a success (null: none seen since start). */
  reachable: boolean | null;
  lastSuccessAt: Date | null;
  lastErrorAt: Date | null;
  lastError: string | null;
  /** DICOM status of the last error (4 hex digits), when the remote answered one. */
  lastErrorStatus: string | null;
}

/** Per remote name, the last success and the last error, in memory (the audit keeps the history). */
export class RemoteStates {
  private readonly states = new Map<string, RemoteState>();

  constructor(private readonly now: () => Date = () => new Date()) {}

  private of(name: string): RemoteState {
    let s = this.states.get(name);
    if (!s) {
      s = { reachable: null, lastSuccessAt: null, lastErrorAt: null, lastError: null, lastErrorStatus: null };
      this.states.set(name, s);
    }
    return s;
  }

  succeeded(name: string): void {
    const s = this.of(name);
    s.reachable = true;
    s.lastSuccessAt = this.now();
  }

  failed(name: string, error: string, status?: number): void {
    const s = this.of(name);
    s.reachable = false;
    s.lastErrorAt = this.now();
    s.lastError = error;
    s.lastErrorStatus = status === undefined ? null : status.toString(16).padStart(4, '0');
  }

  get(name: string): RemoteState {
    return { ...this.of(name) };
  }
}

/** An association a remote opened to us: accepted is a success, rejected or aborted an error. */
export function recordAssociation(
  states: RemoteStates,
  name: string | undefined,
  s: { accepted: boolean; aborted: boolean; rejectReason?: string; abortDetail?: string },
): void {
  if (name === undefined) return;
  if (!s.accepted) states.failed(name, `association rejected: ${s.rejectReason ?? 'not set up'}`);
  else if (s.aborted) states.failed(name, `association aborted: ${s.abortDetail ?? 'no detail'}`);
  else states.succeeded(name);
}
