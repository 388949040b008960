/**
 * Owns the rules of named remotes, without I/O: which remote an incoming association comes from (calling AE title,
 * and the address where the remote asks for it), and finding a remote by name for a role with a clear error.
 */

export type RemoteRole = 'send' | 'retrieve' | 'store';

export interface RemoteLike {
  aeTitle: string;
  host: string;
  port: number;
  matchAddress: boolean;
  roles: Record<RemoteRole, boolean>;
}

/** Addresses as sockets report them: an IPv4 peer on a dual-stack socket is "::ffff:a.b.c.d". */
function plainAddress(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/**
 * The name of the remote an association comes from, or undefined. AE titles compare without padding, as DICOM
 * does; a remote with `matchAddress` matches only from its own address, and wins over one matched by AE title alone.
 */
export function remoteOf(
  remotes: Readonly<Record<string, RemoteLike>>,
  callingAe: string,
  address?: string,
): string | undefined {
  const ae = callingAe.trim();
  let byAe: string | undefined;
  for (const [name, r] of Object.entries(remotes)) {
    if (r.aeTitle.trim() !== ae) continue;
    if (!r.matchAddress) {
      byAe ??= name;
      continue;
    }
    if (address !== undefined && plainAddress(address) === plainAddress(r.host)) return name;
  }
  return byAe;
}

/** A remote name that does not exist, or a remote that may not take a role. */
export class RemoteError extends Error {
  override name = 'RemoteError';
}

const ROLE_WORDS: Record<RemoteRole, string> = {
  send: 'send to us (roles.send)',
  retrieve: 'be queried and retrieved from (roles.retrieve)',
  store: 'be stored to (roles.store)',
};

/** The remote of this name, which must be allowed `role`; else a RemoteError naming the remotes there are. */
export function remoteNamed<R extends RemoteLike>(
  remotes: Readonly<Record<string, R>>,
  name: string,
  role: RemoteRole,
): R {
  const r = remotes[name];
  if (!r) {
    const known = Object.keys(remotes);
    throw new RemoteError(`no remote named "${name}" (remotes: ${known.length ? known.join(', ') : 'none'})`);
  }
  if (!r.roles[role]) throw new RemoteError(`remote "${name}" may not ${ROLE_WORDS[role]}`);
  return r;
}
