import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, run, startProcess, stopProcess, waitForPort } from './peers.js';

/** A move destination dcmqrscp should know (its HostTable). */
export interface DcmqrscpDestination {
  aeTitle: string;
  port: number;
  host?: string;
}

export interface DcmqrscpOptions {
  aeTitle?: string;
  /** Move destinations, by AE title. */
  destinations?: DcmqrscpDestination[];
  /** Part 10 files to serve: copied into its storage area (its quota deletes files) and indexed with dcmqridx. */
  files?: string[];
  /** Extra command-line options (e.g. '-v'). */
  args?: string[];
  /** Listen on this port (a scanner that comes back where it was); default a free one. */
  port?: number;
}

export interface DcmqrscpPeer {
  aeTitle: string;
  port: number;
  dir: string;
  pid: number | undefined;
  /** What it wrote so far. */
  log(): string;
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * Starts DCMTK's dcmqrscp as a scanner on a free port: a config with one AE and its storage area in a temp dir, the
 * move destinations in its HostTable, a copy of the files indexed with dcmqridx. No --single-process (3.6.7 crashes
 * after the first association with it), no UserName/GroupName (not needed, and wrong when run as root).
 */
export async function startDcmqrscp(opts: DcmqrscpOptions = {}): Promise<DcmqrscpPeer> {
  const aeTitle = opts.aeTitle ?? 'DCMQRSCP';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-dcmqrscp-'));
  const storage = path.join(dir, 'db', aeTitle);
  fs.mkdirSync(storage, { recursive: true });
  const port = opts.port ?? (await freePort());

  const hosts = (opts.destinations ?? []).map(
    (d, i) => `dest${i} = (${d.aeTitle}, ${d.host ?? '127.0.0.1'}, ${d.port})`,
  );
  const config = [
    `NetworkTCPPort  = ${port}`,
    'MaxPDUSize      = 131072',
    'MaxAssociations = 16',
    '',
    'HostTable BEGIN',
    ...hosts,
    'HostTable END',
    '',
    'VendorTable BEGIN',
    'VendorTable END',
    '',
    'AETable BEGIN',
    // AE title, storage area, access, quota (max studies, max bytes per study), peers.
    `${aeTitle} ${storage} RW (100, 1024mb) ANY`,
    'AETable END',
    '',
  ].join('\n');
  const configFile = path.join(dir, 'dcmqrscp.cfg');
  fs.writeFileSync(configFile, config);

  const copies = (opts.files ?? []).map((f, i) => {
    const to = path.join(storage, `f${i}_${path.basename(f)}`);
    fs.copyFileSync(f, to);
    return to;
  });
  // dcmqridx takes a long argument list fine, but keep each call moderate.
  for (let i = 0; i < copies.length; i += 200) {
    const r = await run('dcmqridx', [storage, ...copies.slice(i, i + 200)]);
    if (r.code !== 0) throw new Error(`dcmqridx failed (${r.code}): ${r.stderr}${r.stdout}`);
  }

  const child = startProcess('dcmqrscp', ['-c', configFile, ...(opts.args ?? [])]);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  let stopped = false;
  const stop = async (): Promise<void> => {
    stopped = true;
    await stopProcess(child);
  };
  try {
    await waitForPort(port, 10_000);
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}`);
  } catch (err) {
    await stop();
    throw new Error(`dcmqrscp did not start: ${String(err)}\n${output.slice(-4000)}`);
  }

  return {
    aeTitle,
    port,
    dir,
    pid: child.pid,
    log: () => output,
    stop,
    async destroy() {
      if (!stopped) await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
