import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RemoteError, remoteNamed, remoteOf, type RemoteLike } from '../../src/domain/remotes.js';

const r = (aeTitle: string, host: string, over: Partial<RemoteLike> = {}): RemoteLike => ({
  aeTitle,
  host,
  port: 104,
  matchAddress: false,
  roles: { send: true, retrieve: false, store: false },
  ...over,
});

test('an association is named by its calling AE title, compared without padding', () => {
  const remotes = { mr3t: r('MR3T', '10.0.0.5'), ct: r('CT1', '10.0.0.6') };
  assert.equal(remoteOf(remotes, 'MR3T  '), 'mr3t');
  assert.equal(remoteOf(remotes, 'CT1', '127.0.0.1'), 'ct');
  assert.equal(remoteOf(remotes, 'UNKNOWN'), undefined);
});

test('with matchAddress, the same AE title from two scanners is told apart by address', () => {
  const remotes = {
    any: r('MRC', '0.0.0.0'),
    east: r('MRC', '192.0.2.10', { matchAddress: true }),
    west: r('MRC', '192.0.2.20', { matchAddress: true }),
  };
  assert.equal(remoteOf(remotes, 'MRC', '192.0.2.20'), 'west');
  assert.equal(remoteOf(remotes, 'MRC', '::ffff:192.0.2.10'), 'east', 'IPv4 on a dual-stack socket');
  assert.equal(remoteOf(remotes, 'MRC', '192.0.2.99'), 'any', 'by AE title alone when no address matches');
  assert.equal(remoteOf({ east: remotes.east }, 'MRC', '192.0.2.99'), undefined);
});

test('a remote by name for a role, with errors that say what exists and what is missing', () => {
  const remotes = { pacs: r('PACS', 'h', { roles: { send: false, retrieve: true, store: true } }) };
  assert.equal(remoteNamed(remotes, 'pacs', 'retrieve').aeTitle, 'PACS');
  assert.throws(
    () => remoteNamed(remotes, 'xnat', 'store'),
    (e: Error) => e instanceof RemoteError && /no remote named "xnat" \(remotes: pacs\)/.test(e.message),
  );
  assert.throws(() => remoteNamed(remotes, 'pacs', 'send'), /remote "pacs" may not send to us \(roles\.send\)/);
});
