/**
 * The forwarding bench (issue 15; not a test): scannode's C-STORE SCU (src/dimse/scuStore.ts, streaming each data set
 * from its file) against DCMTK `dcmsend` of the same files, both to one `storescp`, in the same run, alternating
 * which goes first, medians of the rounds. The ratio is scannode's rate over dcmsend's.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { storeInstances } from '../../src/dimse/scuStore.js';
import { fileStoreItem } from '../../src/pipeline/forward/storeItems.js';
import { createLogger } from '../../src/logging/logger.js';
import { freePort, startProcess, stopProcess, waitForPort } from '../helpers/peers.js';

export interface ForwardFigures {
  rounds: Array<{ round: number; tool: 'scannode' | 'dcmsend'; seconds: number; instPerSec: number }>;
  scannode: number;
  dcmsend: number;
  ratio: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2 : NaN;
};

export async function benchForward(tmp: string, files: string[], rounds: number): Promise<ForwardFigures> {
  const port = await freePort();
  const out = path.join(tmp, 'forward-out');
  fs.mkdirSync(out, { recursive: true });
  // The destination writes to the page cache (no fsync): what is measured is the sender.
  const scp = startProcess('storescp', ['-aet', 'DEST', '-od', out, '--max-pdu', '131072', String(port)]);
  const log = createLogger({ level: 'error', silent: true });
  const result: ForwardFigures['rounds'] = [];
  try {
    await waitForPort(port);
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 ? (['scannode', 'dcmsend'] as const) : (['dcmsend', 'scannode'] as const);
      for (const tool of order) {
        fs.rmSync(out, { recursive: true, force: true });
        fs.mkdirSync(out);
        const t0 = process.hrtime.bigint();
        if (tool === 'scannode') {
          const outcomes = await storeInstances(
            { aeTitle: 'DEST', host: '127.0.0.1', port },
            files.map(fileStoreItem),
            { callingAe: 'SCANNODE', implementationClassUid: '1.2.826.0.1.3680043.10.1561.1', log },
          );
          const bad = outcomes.filter((o) => o.status !== 0);
          if (bad.length)
            throw new Error(`forward bench: ${bad.length} not stored: ${bad[0]?.error ?? bad[0]?.status}`);
        } else {
          const r = spawnSync('dcmsend', ['-aec', 'DEST', '--max-pdu', '131072', '127.0.0.1', String(port), ...files], {
            env: { ...process.env, TCP_NODELAY: '1' },
            encoding: 'utf8',
          });
          if (r.status !== 0) throw new Error(`dcmsend failed: ${r.stderr}`);
        }
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const stored = fs.readdirSync(out).length;
        if (stored !== files.length) throw new Error(`forward bench: ${tool} stored ${stored} of ${files.length}`);
        result.push({ round, tool, seconds, instPerSec: files.length / seconds });
        console.log(
          `round ${round} forward ${tool.padEnd(8)} -> storescp: ${seconds.toFixed(3)} s, ` +
            `${(files.length / seconds).toFixed(1)} inst/s`,
        );
      }
    }
  } finally {
    await stopProcess(scp);
  }
  const med = (tool: 'scannode' | 'dcmsend') => median(result.filter((r) => r.tool === tool).map((r) => r.instPerSec));
  return {
    rounds: result,
    scannode: med('scannode'),
    dcmsend: med('dcmsend'),
    ratio: med('scannode') / med('dcmsend'),
  };
}
