import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { dulAssociate } from '../helpers/dulClient.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { needPeer, run } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const VERIFICATION = [{ id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] }];

/** Resolves with the time from now until the node closes `socket` (bytes it sent are collected). */
function closedAfter(socket: net.Socket): Promise<{ ms: number; got: Buffer }> {
  const started = Date.now();
  const got: Buffer[] = [];
  return new Promise((resolve) => {
    socket.on('data', (d: Buffer) => got.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ ms: Date.now() - started, got: Buffer.concat(got) }));
  });
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

describe('upper layer timers (real short timeouts)', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode({ dicom: { artimTimeoutSeconds: 0.5, idleTimeoutSeconds: 1 } });
  });
  after(async () => node?.destroy());

  test('ARTIM: a connection that sends nothing, or half an A-ASSOCIATE-RQ, is closed after artimTimeoutSeconds', async () => {
    const silent = await connect(node.port);
    const dripping = await connect(node.port);
    dripping.write(Buffer.from([0x01, 0x00, 0x00, 0x00, 0x00, 0x44, 0x00, 0x01]));
    const [a, b] = await Promise.all([closedAfter(silent), closedAfter(dripping)]);
    for (const r of [a, b]) assert.ok(r.ms >= 400 && r.ms < 3000, `closed after ${r.ms} ms`);
  });

  test('idle: an association with nothing going on is aborted after idleTimeoutSeconds', async () => {
    const started = Date.now();
    const assoc = await dulAssociate({ port: node.port, contexts: VERIFICATION });
    const aborted = await assoc.closed;
    const ms = Date.now() - started;
    assert.ok(aborted, 'ended by an A-ABORT');
    assert.equal(aborted.by, 'peer');
    assert.ok(ms >= 900 && ms < 4000, `aborted after ${ms} ms`);
    const audit = await waitFor('the audit row', async () => {
      const rows = await node.node.db.source
        .getRepository(node.node.db.entities.Association)
        .findBy({ callingAe: 'DULSCU' });
      return rows.length ? rows : undefined;
    });
    assert.equal(audit[0]!.aborted, true);
  });

  test('an association that works is not idle: answers keep it open', async () => {
    const assoc = await dulAssociate({ port: node.port, contexts: VERIFICATION });
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 400));
      const rsp = await assoc.request(1, {
        CommandField: 0x0030,
        MessageID: i + 1,
        AffectedSOPClassUID: '1.2.840.10008.1.1',
      });
      assert.equal(rsp.command.Status, 0);
    }
    await assoc.release();
  });

  test('TCP keepalive is on for accepted sockets', async (t) => {
    if (!needPeer(t, 'ss')) return;
    const socket = await connect(node.port);
    try {
      await new Promise((r) => setTimeout(r, 100));
      const out = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${node.port} )`]).toString();
      assert.match(out, /timer:\(keepalive/, out);
    } finally {
      socket.destroy();
    }
  });
});

describe('connection and association limits', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode({ dicom: { maxPendingConnections: 4, maxAssociations: 1, artimTimeoutSeconds: 30 } });
  });
  after(async () => node?.destroy());

  test('idle connections beyond maxPendingConnections are closed, oldest first; a scanner still gets in', async (t) => {
    if (!needPeer(t, 'echoscu')) return;
    const sockets = await Promise.all(Array.from({ length: 10 }, () => connect(node.port)));
    const closes = sockets.map((s) => closedAfter(s));
    await waitFor('the cap', async () => (node.node.dicom.pendingConnections <= 4 ? true : undefined));
    const closedNow = await Promise.all(
      closes.map((c) => Promise.race([c.then(() => true), sleep(300).then(() => false)])),
    );
    assert.deepEqual(closedNow, [true, true, true, true, true, true, false, false, false, false], 'the six oldest');
    const e = await run('echoscu', ['-aec', 'SCANNODE', '127.0.0.1', String(node.port)]);
    assert.equal(e.code, 0, e.stderr);
    for (const s of sockets) s.destroy();
  });

  test('beyond maxAssociations: A-ASSOCIATE-RJ transient, local limit exceeded; room again once released', async (t) => {
    if (!needPeer(t, 'echoscu')) return;
    const held = await dulAssociate({ port: node.port, contexts: VERIFICATION });
    const refused = await run('echoscu', ['-aec', 'SCANNODE', '127.0.0.1', String(node.port)]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr + refused.stdout, /Local Limit Exceeded/i);
    await held.release();
    await waitFor('the slot freed', async () => (node.node.dicom.activeAssociations === 0 ? true : undefined));
    const ok = await run('echoscu', ['-aec', 'SCANNODE', '127.0.0.1', String(node.port)]);
    assert.equal(ok.code, 0, ok.stderr);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
