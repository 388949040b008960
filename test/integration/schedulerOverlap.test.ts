import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { newUid } from '../helpers/dicomgen.js';
import { startTestNode } from '../helpers/node.js';
import { waitFor } from '../helpers/waitFor.js';

const HOLD_MS = 2500;

/**
 * A scanner that is slow to answer: it accepts the TCP connection and says nothing for HOLD_MS, then hangs up. A
 * reconcile pass (its STUDY C-FIND) therefore takes HOLD_MS. Counts connections and how many are open at once.
 */
async function slowScanner() {
  let open = 0;
  let maxOpen = 0;
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    open++;
    maxOpen = Math.max(maxOpen, open);
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    const timer = setTimeout(() => socket.destroy(), HOLD_MS);
    socket.on('close', () => {
      clearTimeout(timer);
      sockets.delete(socket);
      open--;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    get open() {
      return open;
    },
    get maxOpen() {
      return maxOpen;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

for (const kind of DB_KINDS) {
  describe(`scheduler in a running node (${kind})`, () => {
    test('two ticks overlapping (one run only): runNow / trigger / cron ticks during a slow reconcile', async (t) => {
      if (!(await needDb(t, kind))) return;
      const scanner = await slowScanner();
      const node = await startTestNode({
        kind,
        extra: {
          // A tick every second: several fall inside one slow pass.
          scheduler: { enabled: true, cron: '* * * * * *' },
          scanner: { aeTitle: 'SLOWSCANNER', host: '127.0.0.1', port: scanner.port },
          completion: { quietPeriodSeconds: 3600 },
          retrieve: { findTimeoutSeconds: 30, moveTimeoutSeconds: 30, backoffSeconds: 0, settleSeconds: 0 },
        },
      });
      try {
        const reconciler = node.node.reconciler;
        const scheduler = node.node.scheduler;
        // Count reconcile passes as the scheduler's job sees them (the job calls reconciler.reconcileAll()).
        let inFlight = 0;
        let maxInFlight = 0;
        let passes = 0;
        const original = reconciler.reconcileAll.bind(reconciler);
        reconciler.reconcileAll = async () => {
          passes++;
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          try {
            return await original();
          } finally {
            inFlight--;
          }
        };
        // An active scan, so a pass asks the (slow) scanner.
        const study = newUid();
        const dir = path.join(node.dataDir, 'active-scans');
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, `${study}.json.partial`), JSON.stringify({ studyInstanceUID: study }));
        fs.renameSync(path.join(dir, `${study}.json.partial`), path.join(dir, `${study}.json`));
        const db = node.node.db;
        await waitFor(
          'active scan row',
          async () =>
            await db.source.getRepository(db.entities.Scan).existsBy({ studyInstanceUid: study, state: 'active' }),
          15_000,
        );
        // A pass (started by runNow() or a tick, whichever comes first) is going while the scanner holds a connection.
        void scheduler.runNow();
        await waitFor('the scanner holds a connection', async () => scanner.open > 0, 10_000);
        const first = scheduler.runNow();
        assert.equal(scheduler.state.running, true);
        const skippedBefore = scheduler.state.skipped;
        const passesBefore = passes;
        // More requests while it runs: runNow() joins the running pass, trigger() asks for one follow-up.
        const again = [scheduler.runNow(), scheduler.runNow(), scheduler.runNow()];
        for (const p of again) assert.equal(p, first, 'runNow() during a run hands back the running one');
        scheduler.trigger();
        scheduler.trigger();
        scheduler.trigger();
        await first;
        assert.equal(passes, passesBefore, 'no pass started while the first was going');
        // The cron ticks (every second) that came during the HOLD_MS pass were skipped and counted.
        assert.ok(scheduler.state.skipped > skippedBefore, `skipped ${scheduler.state.skipped} (was ${skippedBefore})`);
        // The follow-up asked for by the triggers runs after it, alone.
        await waitFor('the follow-up pass', async () => passes > passesBefore, 10_000);
        await new Promise((r) => setTimeout(r, HOLD_MS + 500));
        assert.equal(maxInFlight, 1, 'one reconcile pass at a time');
        assert.equal(scanner.maxOpen, 1, 'the scanner never saw two passes at once');
        assert.ok(scheduler.state.runs >= 2);
      } finally {
        await node.destroy();
        await scanner.close();
      }
    });
  });
}
