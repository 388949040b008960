import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launch } from '../helpers/browser.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { freePort, needPeer, needNode, storeAll } from '../helpers/peers.js';
import { generateStudy, newUid } from '../helpers/dicomgen.js';
import { baseUrl, call } from '../helpers/http.js';
import { createDataset, nCreate, nSet, performedSeries } from '../helpers/mppsClient.js';

/** Screenshots land here (the tests' output folder, ignored by git). */
const OUT = path.resolve('test-output', 'status-page');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-page-'));

async function startNode(t: TestContext): Promise<TestNode | undefined> {
  if (!needPeer(t, 'storescu', 'chromium')) return undefined;
  const scannerPort = await freePort();
  return startTestNode({
    extra: {
      scanner: { aeTitle: 'NOSCANNER', host: '127.0.0.1', port: scannerPort },
      scheduler: { enabled: true, cron: '0 0 0 1 1 *' },
      retrieve: { settleSeconds: 0, findTimeoutSeconds: 5 },
      import: { watchInbox: false },
    },
  });
}

/** The progress bar of one series as the page shows it. */
function seriesBar(page: Page, series: string) {
  return page.locator(`tr[data-series="${series}"] .bar`);
}

test('status page: a series progress bar advances and the scan moves to finished, live, without a reload', async (t) => {
  const node = await startNode(t);
  if (!needNode(t, node)) return;
  let browser: Browser | undefined;
  try {
    const study = generateStudy({ dir: path.join(tmp, 'live'), series: 2, perSeries: 4, accessionNumber: 'PAGE1' });
    const studyUid = study[0]!.studyInstanceUid;
    const [s1, s2] = [...new Set(study.map((i) => i.seriesInstanceUid))];
    // The scanner announces the procedure and what it will send: 2 series x 4 images expected.
    const mpps = newUid();
    assert.equal(
      (await nCreate(node.port, mpps, createDataset({ studyInstanceUid: studyUid, accessionNumber: 'PAGE1' }))).status,
      0,
    );
    assert.equal((await nSet(node.port, mpps, { PerformedSeriesSequence: performedSeries(study) })).status, 0);

    browser = await launch();
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${baseUrl(node)}/`);
    await page.locator('#conn', { hasText: 'live' }).waitFor({ timeout: 15_000 });
    const scan = page.locator(`details.scan[data-study="${studyUid}"]`);
    await scan.waitFor();
    assert.equal(await seriesBar(page, s1!).getAttribute('aria-valuenow'), '0');
    assert.equal(await seriesBar(page, s1!).getAttribute('aria-valuemax'), '4');
    // A marker in the page's JavaScript state: a reload would lose it.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));

    // Images arrive: the first series' bar moves to 3 of 4, the second stays at 0.
    await storeAll(node, study.filter((i) => i.seriesInstanceUid === s1).slice(0, 3), { aet: 'PAGESCU' });
    await page.waitForFunction(
      (uid) => document.querySelector(`tr[data-series="${uid}"] .bar`)?.getAttribute('aria-valuenow') === '3',
      s1,
      { timeout: 15_000 },
    );
    assert.equal(await page.locator(`tr[data-series="${s1}"] td.num`).last().textContent(), '3 / 4');
    assert.equal(await seriesBar(page, s2!).getAttribute('aria-valuenow'), '0');
    const width = await seriesBar(page, s1!).evaluate((b) => (b.firstElementChild as HTMLElement).style.width);
    assert.equal(width, '75%');
    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'in-progress.png'), fullPage: true });

    // The rest, and MPPS COMPLETED: the scan leaves the active list and shows under finished.
    await storeAll(
      node,
      study.filter((i) => !(i.seriesInstanceUid === s1 && study.indexOf(i) < 3)),
      { aet: 'PAGESCU' },
    );
    assert.equal((await nSet(node.port, mpps, { PerformedProcedureStepStatus: 'COMPLETED' })).status, 0);
    await node.node.scheduler.runNow();
    await page.locator(`#finished tr[data-study="${studyUid}"]`).waitFor({ timeout: 15_000 });
    await scan.waitFor({ state: 'detached' });
    const row = await page.locator(`#finished tr[data-study="${studyUid}"] td`).allTextContents();
    assert.ok(row.includes('PAGE1'), row.join(' | '));
    assert.ok(row.includes('8 / 8'), row.join(' | '));
    assert.ok(row.includes('COMPLETED'), row.join(' | '));
    assert.ok(row.includes('SN-TEST-1'), `the patient ID: ${row.join(' | ')}`);
    // The scanner (nothing listens on its port) was asked by the passes: unreachable, at a glance, with why.
    const pill = page.locator('#scanner');
    await pill.filter({ hasText: 'scanner unreachable' }).waitFor({ timeout: 15_000 });
    assert.equal(await pill.getAttribute('class'), 'pill bad');
    assert.match(String(await pill.getAttribute('title')), /the scanner is not reachable/);
    // The one node: alive, running the passes.
    const nodeRow = await page.locator('#nodes tbody tr').allTextContents();
    assert.equal(nodeRow.length, 1);
    assert.match(nodeRow[0]!, /alive.*\*$/);
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42);
    // The last associations table lists the senders.
    assert.ok((await page.locator('#associations tbody tr', { hasText: 'PAGESCU' }).count()) >= 2);
    await page.screenshot({ path: path.join(OUT, 'finished.png'), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser?.close();
    await node.destroy();
  }
});

test('status page: hundreds of series stay usable (all rows, filter, failed scans with their reason)', async (t) => {
  const node = await startNode(t);
  if (!needNode(t, node)) return;
  let browser: Browser | undefined;
  try {
    // One procedure of 300 series (one image each, none sent yet) and a second, discontinued one.
    const big = newUid();
    const refs = Array.from({ length: 300 }, () => ({ seriesInstanceUid: newUid(), sopInstanceUid: newUid() }));
    const mpps = newUid();
    assert.equal(
      (await nCreate(node.port, mpps, createDataset({ studyInstanceUid: big, accessionNumber: 'BIG' }))).status,
      0,
    );
    assert.equal((await nSet(node.port, mpps, { PerformedSeriesSequence: performedSeries(refs) })).status, 0);
    const gone = newUid();
    const mpps2 = newUid();
    assert.equal(
      (await nCreate(node.port, mpps2, createDataset({ studyInstanceUid: gone, accessionNumber: 'GONE' }))).status,
      0,
    );
    assert.equal((await nSet(node.port, mpps2, { PerformedProcedureStepStatus: 'DISCONTINUED' })).status, 0);
    await node.node.scheduler.runNow();
    const failed = await call(node, 'GET', `/api/scans/${gone}`);
    assert.equal(failed.json.state, 'failed');

    browser = await launch();
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${baseUrl(node)}/`);
    await page.locator(`details.scan[data-study="${big}"]`).waitFor({ timeout: 15_000 });
    assert.equal(await page.locator(`details.scan[data-study="${big}"] tr[data-series]`).count(), 300);
    const reason = await page.locator(`#failed tr[data-study="${gone}"] td.failed-reason`).textContent();
    assert.match(String(reason), /MPPS DISCONTINUED/);
    // So many series start folded; the summary line carries the progress.
    const bigScan = page.locator(`details.scan[data-study="${big}"]`);
    assert.equal(await bigScan.evaluate((d) => (d as HTMLDetailsElement).open), false);
    assert.match(String(await bigScan.locator('summary').textContent()), /0\/300 series complete/);
    // The filter narrows the active list; a series UID shows its scan, opened, with only that series.
    await page.fill('#filter', 'no-such-thing');
    assert.equal(await bigScan.isVisible(), false);
    const wanted = refs[123]!.seriesInstanceUid;
    await page.fill('#filter', wanted);
    assert.equal(await bigScan.isVisible(), true);
    assert.equal(await bigScan.evaluate((d) => (d as HTMLDetailsElement).open), true);
    assert.equal(await bigScan.locator(`tr[data-series="${wanted}"]`).isVisible(), true);
    assert.equal(await bigScan.locator('tr[data-series]:visible').count(), 1);
    // The accession shows the whole scan again.
    await page.fill('#filter', 'big');
    assert.equal(await bigScan.locator('tr[data-series]:visible').count(), 300);
    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'many-series.png') });
  } finally {
    await browser?.close();
    await node.destroy();
  }
});
