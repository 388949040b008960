// The status page lists recent imports with their counts and state; a failed one shows its reason and how to retry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { startTestNode } from '../helpers/node.js';
import { needPeer } from '../helpers/peers.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { baseUrl } from '../helpers/http.js';
import { launch } from '../helpers/browser.js';

const OUT = path.resolve('test-output', 'status-page');

test('status page: recent imports with their counts and state; a failed one says why and how to retry, live', async (t) => {
  if (!needPeer(t, 'chromium')) return;
  const node = await startTestNode({ extra: { import: { watchInbox: false } } });
  let browser: Browser | undefined;
  try {
    const importer = node.node.importer;
    const ok = generateStudy({ dir: path.join(node.dir, 'OK'), series: 1, perSeries: 3 });
    const good = await importer.importPath({
      path: path.join(node.dir, 'OK'),
      baseDir: node.dir,
      name: 'OK',
      source: 'cli',
      keepSources: true,
    });
    assert.equal(good.archived, ok.length);
    browser = await launch();
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${baseUrl(node)}/`);
    const goodRow = page.locator(`#imports tr[data-import="${good.id}"][data-state="finished"]`);
    await goodRow.waitFor({ timeout: 15_000 });
    const cells = await goodRow.locator('td').allTextContents();
    assert.deepEqual(cells.slice(1, 9), ['OK', 'cli', 'finished', '3', '3', '0', '0', '0']);

    // A batch whose study folder in the archive is taken by a file: failed, with the reason, without a reload.
    const bad = generateStudy({ dir: path.join(node.dir, 'BAD'), series: 1, perSeries: 2 });
    fs.writeFileSync(path.join(node.dataDir, 'site', 'raw', bad[0]!.studyInstanceUid), 'not a folder');
    const failed = await importer.importPath({
      path: path.join(node.dir, 'BAD'),
      baseDir: node.dir,
      name: 'BAD',
      source: 'cli',
      keepSources: true,
    });
    assert.equal(failed.state, 'failed');
    // The page may have shown it running; it turns failed in place.
    const badRow = page.locator(`#imports tr[data-import="${failed.id}"][data-state="failed"]`);
    await badRow.waitFor({ timeout: 15_000 });
    const reason = String(await badRow.locator('td.failed-reason').textContent());
    assert.match(reason, /cannot write the archive/);
    assert.match(reason, new RegExp(`scannode import --retry ${failed.id}`));
    assert.equal(
      await page.locator('#imports tbody tr').first().getAttribute('data-import'),
      failed.id,
      'newest first',
    );
    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'imports.png'), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser?.close();
    await node.destroy();
  }
});
