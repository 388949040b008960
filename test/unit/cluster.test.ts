import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nodeState, startRefusal, type Here, type NodeRecord } from '../../src/domain/cluster.js';

const NOW = Date.parse('2026-11-25T00:00:00Z');
const LEASE = 30_000;
const here: Here = { id: 'a', host: 'h1', pid: 100, pidNamespace: 'pid:[1]', pidAlive: (pid) => pid === 200 };
const row = (over: Partial<NodeRecord>): NodeRecord => ({
  id: 'b',
  host: 'h2',
  pid: 200,
  heartbeatAt: new Date(NOW - 1000),
  stoppedAt: null,
  ...over,
});

test('a node is alive while it beats, dead once silent for a lease, stopped once it said so', () => {
  assert.equal(nodeState(row({}), NOW, LEASE), 'alive');
  assert.equal(nodeState(row({ heartbeatAt: new Date(NOW - LEASE - 1) }), NOW, LEASE), 'dead');
  assert.equal(nodeState(row({ stoppedAt: new Date(NOW) }), NOW, LEASE), 'stopped');
});

test('on this host a node whose process is gone is dead at once, and this process is an earlier incarnation', () => {
  const ns = { host: 'h1', pidNamespace: 'pid:[1]' };
  assert.equal(nodeState(row({ ...ns, pid: 300 }), NOW, LEASE, here), 'dead', 'killed -9, restarted');
  assert.equal(nodeState(row({ ...ns, pid: 200 }), NOW, LEASE, here), 'alive', 'another process still runs');
  assert.equal(nodeState(row({ ...ns, pid: 100 }), NOW, LEASE, here), 'dead', 'this very pid: an earlier incarnation');
  assert.equal(nodeState(row({ host: 'h2', pid: 300 }), NOW, LEASE, here), 'alive', 'pids of other hosts are not ours');
});

test('containers on the host network share the host name, not their pids: only the heartbeat tells', () => {
  // Two nodes in two containers: same host name, each node is pid 7 of its own namespace.
  const container: Here = { ...here, pid: 7, pidNamespace: 'pid:[4026532301]', pidAlive: () => false };
  const other = row({ id: 'b', host: 'h1', pid: 7, pidNamespace: 'pid:[4026532302]' });
  assert.equal(
    nodeState(other, NOW, LEASE, container),
    'alive',
    'the same pid in another namespace is another process',
  );
  assert.equal(nodeState({ ...other, pid: 300 }, NOW, LEASE, container), 'alive', 'its pid cannot be asked from here');
  assert.equal(nodeState({ ...other, pidNamespace: null }, NOW, LEASE, container), 'alive', 'a row from before');
  assert.equal(nodeState({ ...other, heartbeatAt: new Date(NOW - LEASE - 1) }, NOW, LEASE, container), 'dead');
  // This node's own row from its previous container (restarted after kill -9): an earlier incarnation.
  assert.equal(nodeState({ ...other, id: 'a' }, NOW, LEASE, container), 'dead', 'its container restarted');
});

test('a second live node on SQLite is refused with who holds it and what to do', () => {
  const why = startRefusal(here, 'sqlite', [row({ id: 'mr-node' })], NOW, LEASE);
  assert.match(
    why ?? '',
    /SQLite database is in use by scannode node "mr-node" \(pid 200 on h2, last heartbeat 1 s ago\)/,
  );
  assert.match(why ?? '', /several nodes need PostgreSQL/);
  assert.equal(startRefusal(here, 'postgres', [row({ id: 'mr-node' })], NOW, LEASE), undefined, 'PostgreSQL: fine');
  assert.equal(startRefusal(here, 'sqlite', [row({ stoppedAt: new Date(NOW) })], NOW, LEASE), undefined);
});

test('two live nodes with one id are refused on any database', () => {
  const why = startRefusal(here, 'postgres', [row({ id: 'a' })], NOW, LEASE);
  assert.match(why ?? '', /node id "a" is already running .*give each node its own cluster\.nodeId/);
});

test('a node whose shared settings differ from a live node is refused, naming the setting and both values', () => {
  const settings = { 'dicom.aeTitle': 'SCANNODE', 'completion.grouping': 'uid' };
  const theirs = (s: Record<string, unknown>) => row({ settings: JSON.stringify(s) });
  const why = startRefusal(here, 'postgres', [theirs({ ...settings, 'dicom.aeTitle': 'OTHER' })], NOW, LEASE, settings);
  assert.match(why ?? '', /dicom\.aeTitle is "SCANNODE" here but "OTHER" on running node "b": every node/);
  assert.equal(startRefusal(here, 'postgres', [theirs(settings)], NOW, LEASE, settings), undefined, 'agreeing');
  const stopped = row({ settings: JSON.stringify({ 'dicom.aeTitle': 'OTHER' }), stoppedAt: new Date(NOW) });
  assert.equal(startRefusal(here, 'postgres', [stopped], NOW, LEASE, settings), undefined, 'a stopped node: no say');
  assert.equal(
    startRefusal(here, 'postgres', [theirs({ 'dicom.aeTitle': 'SCANNODE' })], NOW, LEASE, settings),
    undefined,
    'a setting an older node did not know is not compared',
  );
});
