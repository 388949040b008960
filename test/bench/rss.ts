/**
 * The peak-memory part of `npm run bench`: scannode's peak RSS (VmHWM) while it stores one big object sent by
 * storescu: a 1 GiB MR instance, and a raw-data object of 2.5 GiB without Pixel Data (bulk in a private OB value).
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeBigInstance, writeBigRawObject } from './bigfile.js';
import { procStatusBytes, sleep } from './procs.js';
import { sendAll, startScannode, type BenchContext } from './receivers.js';

const MiB = 1024 * 1024;

export type BigObject =
  { kind: 'instance'; rows: number; columns: number; frames: number } | { kind: 'raw'; bytes: number };

export interface RssResult {
  object: 'instance' | 'raw';
  instanceBytes: number;
  sendMs: number;
  /** VmHWM before the send (start-up peak) and after it (peak of the whole life), bytes. */
  hwmBefore: number;
  hwmAfter: number;
  /** Largest VmRSS seen by sampling every 20 ms during the send. */
  maxSampledRss: number;
  /** Largest VmRSS per second of the send, MiB. */
  rssPerSecondMiB: number[];
  storedBytes: number;
}

export function describe(big: BigObject): string {
  return big.kind === 'instance'
    ? `one ${((big.rows * big.columns * big.frames * 2) / MiB).toFixed(0)} MiB instance`
    : `a ${(big.bytes / 1024 / MiB).toFixed(2)} GiB object without Pixel Data`;
}

/** Writes the object, starts scannode, sends it with storescu and samples scannode's memory meanwhile. */
export async function measureRss(tmp: string, big: BigObject, ctx: BenchContext): Promise<RssResult> {
  const bigDir = fs.mkdtempSync(path.join(tmp, `big-${big.kind}-`));
  const file = path.join(bigDir, 'big.dcm');
  const instanceBytes =
    big.kind === 'instance'
      ? writeBigInstance(file, big.rows, big.columns, big.frames)
      : writeBigRawObject(file, big.bytes);
  const r = await startScannode(path.join(bigDir, 'scannode'), ctx, `rss-${big.kind}`);
  const pid = r.pid;
  if (pid === undefined) throw new Error('scannode has no pid');
  await sleep(500); // let start-up settle
  const hwmBefore = procStatusBytes(pid, 'VmHWM') ?? 0;
  let maxSampledRss = 0;
  const rssPerSecondMiB: number[] = [];
  let sending = true;
  const t0 = Date.now();
  const sampler = (async () => {
    while (sending) {
      const rss = procStatusBytes(pid, 'VmRSS') ?? 0;
      maxSampledRss = Math.max(maxSampledRss, rss);
      const sec = Math.floor((Date.now() - t0) / 1000);
      rssPerSecondMiB[sec] = Math.max(rssPerSecondMiB[sec] ?? 0, Math.round(rss / MiB));
      await sleep(20);
    }
  })();
  let sendMs: number;
  try {
    // -R: propose only the SOP class of the file (Raw Data Storage is not among storescu's defaults)
    sendMs = await sendAll(r, [[file]], ['-R']);
  } catch (err) {
    await r.finish().catch(() => undefined);
    throw err;
  } finally {
    sending = false;
    await sampler;
  }
  const hwmAfter = procStatusBytes(pid, 'VmHWM') ?? 0;
  const storeDir = r.storeDir ?? '';
  const stored = await r.finish();
  const names = fs.existsSync(storeDir) ? fs.readdirSync(storeDir).filter((n) => n.endsWith('.dcm')) : [];
  const first = names[0];
  const storedBytes = first === undefined ? 0 : fs.statSync(path.join(storeDir, first)).size;
  fs.rmSync(bigDir, { recursive: true, force: true });
  if (stored.files !== 1 || stored.rows !== 1 || storedBytes < instanceBytes - 4096) {
    throw new Error(
      `rss ${describe(big)}: ${stored.files} files (${storedBytes} bytes), ${stored.rows} rows; ` +
        `expected 1 of about ${instanceBytes}\n${r.output()}`,
    );
  }
  return {
    object: big.kind,
    instanceBytes,
    sendMs,
    hwmBefore,
    hwmAfter,
    maxSampledRss,
    rssPerSecondMiB,
    storedBytes,
  };
}
