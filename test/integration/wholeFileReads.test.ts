import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { startTestNode } from '../helpers/node.js';
import { waitFor } from '../helpers/waitFor.js';
import { newUid } from '../helpers/dicomgen.js';
import { ScanRequests } from '../../src/pipeline/scans/scanRequests.js';
import { compareDatasets } from '../../src/storage/files.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-reads-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Bytes this process has read through read(2) and friends so far (Linux). */
function bytesRead(): number {
  const m = /rchar: (\d+)/.exec(fs.readFileSync('/proc/self/io', 'utf8'));
  return Number(m![1]);
}

test('active-scans/: a 10 GB file goes to problem/ unread; an unchanged request is not read again per rescan', async (t) => {
  const node = await startTestNode();
  t.after(() => node.destroy());
  const dir = path.join(node.dataDir, 'active-scans');
  const big = path.join(dir, 'huge.json');
  const fd = fs.openSync(big, 'w');
  fs.ftruncateSync(fd, 10 * 1024 ** 3); // sparse: costs no disk, would cost 10 GB to read
  fs.closeSync(fd);
  const reason = await waitFor(
    'huge.json in problem/',
    () => {
      const f = path.join(node.dataDir, 'problem', 'huge.json.reason.txt');
      return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : undefined;
    },
    20_000,
  );
  assert.match(reason, /larger than 65536 bytes \(10737418240\); not read/);

  // A valid request padded to 60 KB, rescanned every 20 ms: read once, not 50 times a second.
  const study = newUid();
  const scans = new ScanRequests(node.node.db, node.dataDir, node.node.log, { rescanMs: 20, settleMs: 0 });
  fs.writeFileSync(
    path.join(dir, `${study}.json`),
    JSON.stringify({ studyInstanceUID: study, note: ' '.repeat(60_000) }),
  );
  fs.utimesSync(path.join(dir, `${study}.json`), new Date(Date.now() - 5000), new Date(Date.now() - 5000));
  await node.node.scans.stop();
  await scans.start();
  t.after(() => scans.stop());
  await waitFor('the request row', () => scans.describe(study));
  await new Promise((r) => setTimeout(r, 200));
  const before = bytesRead();
  await new Promise((r) => setTimeout(r, 1000));
  const read = bytesRead() - before;
  assert.ok(read < 600_000, `about 50 rescans of an unchanged 60 KB file read ${read} bytes`);
});

test('duplicate comparison of two 256 MB files does not stall the event loop', async (t) => {
  const a = path.join(tmp, 'a.dcm');
  const b = path.join(tmp, 'b.dcm');
  const chunk = Buffer.alloc(16 << 20, 7);
  for (const f of [a, b]) {
    const fd = fs.openSync(f, 'w');
    for (let i = 0; i < 16; i++) fs.writeSync(fd, chunk);
    fs.closeSync(fd);
  }
  let maxGap = 0;
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 5);
  const started = Date.now();
  try {
    assert.equal(await compareDatasets(a, b), true);
    // One more tick, so that a comparison that blocked the loop throughout is measured too.
    await new Promise((r) => setTimeout(r, 20));
  } finally {
    clearInterval(timer);
  }
  t.diagnostic(`compared in ${Date.now() - started} ms`);
  t.diagnostic(`gap ${maxGap}`);
  assert.ok(maxGap < 300, `longest stall of the event loop: ${maxGap} ms`);
  fs.appendFileSync(b, 'x');
  assert.equal(await compareDatasets(a, b), false, 'a different length differs');
});
