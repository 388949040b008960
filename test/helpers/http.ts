import assert from 'node:assert/strict';
import type { TestNode } from './node.js';

/** http://127.0.0.1:<port> of a test node's HTTP server (it listens on port 0). */
export function baseUrl(t: TestNode): string {
  const addr = t.node.http.server.address();
  assert.ok(addr && typeof addr === 'object');
  return `http://127.0.0.1:${addr.port}`;
}

export interface CallResult {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

/** One JSON request to a test node over real HTTP. */
export async function call(
  t: TestNode,
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<CallResult> {
  const res = await fetch(`${baseUrl(t)}${url}`, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body !== undefined ? (typeof body === 'string' ? body : JSON.stringify(body)) : undefined,
  });
  const text = await res.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    assert.fail(`${method} ${url}: HTTP ${res.status} is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, headers: res.headers, json };
}
