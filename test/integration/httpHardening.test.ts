import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { hostName } from '../../src/http/guard.js';
import { waitFor } from '../helpers/waitFor.js';

interface Raw {
  status: number;
  body: string;
}

/** One request with the Host header a browser would send for the page's own name. */
function request(node: TestNode, method: string, url: string, host: string, body?: unknown): Promise<Raw> {
  const addr = node.node.http.server.address() as { port: number };
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port: addr.port,
        method,
        path: url,
        headers: { host, ...(payload ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    // An SSE stream answered 200 never ends: a request that should have been refused fails here instead of hanging.
    req.setTimeout(5000, () => req.destroy(new Error(`no complete answer to ${method} ${url} within 5 s`)));
    req.end(payload);
  });
}

/** Opens a live status stream; resolves with its status code once the headers are in (the stream stays open). */
function openEvents(node: TestNode): Promise<{ status: number; close(): void }> {
  const addr = node.node.http.server.address() as { port: number };
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port: addr.port, path: '/api/events', headers: { accept: 'text/event-stream' } },
      (res) => {
        res.on('data', () => undefined);
        resolve({ status: res.statusCode ?? 0, close: () => req.destroy() });
      },
    );
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
  });
}

test('Host header names', () => {
  assert.equal(hostName('LocalHost:8080'), 'localhost');
  assert.equal(hostName('[::1]:8080'), '::1');
  assert.equal(hostName('example.org.'), 'example.org');
  assert.equal(hostName(undefined), '');
});

test('DNS rebinding: on loopback, only loopback Host names (and http.allowedHosts) are answered', async (t) => {
  const node = await startTestNode({ extra: { http: { port: 0, allowedHosts: ['scannode.lab.example'] } } });
  t.after(() => node.destroy());
  const port = (node.node.http.server.address() as { port: number }).port;
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'scannode.lab.example']) {
    assert.equal((await request(node, 'GET', '/api/status', host)).status, 200, host);
  }
  const read = await request(node, 'GET', '/api/scans', `attacker.example:${port}`);
  assert.equal(read.status, 403, 'patient data not readable through a rebound name');
  assert.match((JSON.parse(read.body) as { message: string }).message, /Host "attacker.example" is not allowed/);
  const write = await request(node, 'POST', '/api/scans', `attacker.example:${port}`, { studyInstanceUid: '1.2.3.4' });
  assert.equal(write.status, 403, 'nor writable without a token');
  const db = node.node.db;
  assert.equal(await db.source.getRepository(db.entities.Scan).count(), 0, 'no request was added');
});

test('/api/events: connections beyond http.maxEventStreams get 503', async (t) => {
  const node = await startTestNode({ extra: { http: { port: 0, maxEventStreams: 2 } } });
  t.after(() => node.destroy());
  const a = await openEvents(node);
  const b = await openEvents(node);
  t.after(() => (a.close(), b.close()));
  assert.deepEqual([a.status, b.status], [200, 200]);
  const c = await request(node, 'GET', '/api/events', 'localhost');
  assert.equal(c.status, 503);
  assert.match(c.body, /too many live status connections/);
  a.close();
  const again = await (async () => {
    for (let i = 0; i < 100; i++) {
      const d = await openEvents(node);
      if (d.status === 200) return d;
      d.close();
      await new Promise((r) => setTimeout(r, 50));
    }
    return undefined;
  })();
  assert.ok(again, 'a closed stream frees its place');
  again.close();
});

test('error bodies: no absolute path, no symbolic link target; 500 answers a generic message', async (t) => {
  const node = await startTestNode({ extra: { import: { watchInbox: false } } });
  t.after(() => node.destroy());
  const inbox = path.join(node.dataDir, 'inbox');
  fs.symlinkSync('/etc', path.join(inbox, 'link-out'));
  for (const p of ['link-out', '/etc', '../', 'missing-folder']) {
    const r = await request(node, 'POST', '/api/imports', 'localhost', { path: p });
    assert.ok(r.status >= 400 && r.status < 500, `${p}: ${r.status}`);
    assert.doesNotMatch(r.body, /\/etc|\/tmp\/|scannode-test-/, `${p}: ${r.body}`);
  }
  // A database that went away mid-request: a 500 without the driver's message; the details are in the log.
  await node.node.db.close();
  const r = await request(node, 'GET', '/api/scans', 'localhost');
  assert.equal(r.status, 500);
  const body = JSON.parse(r.body) as { error: string; message: string };
  assert.equal(body.error, 'internal error');
  assert.match(body.message, /^the request failed; the node's log has the details \(request [\w-]+\)$/);
  // winston's file transport writes a moment later.
  await waitFor('the details in the log', () =>
    /HTTP request failed.*(closed|not initialized|Connection)/i.test(
      fs.readFileSync(path.join(node.dir, 'scannode.log'), 'utf8'),
    ),
  );
});
