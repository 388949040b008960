import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, startProcess, stopProcess, waitForPort } from './peers.js';
import { waitFor } from './waitFor.js';

/** A calling AE / move destination Orthanc should know (its `DicomModalities`). */
export interface OrthancModality {
  aeTitle: string;
  port: number;
  host?: string;
}

export interface OrthancOptions {
  aeTitle?: string;
  /** Registered in DicomModalities: Orthanc answers C-FIND / C-MOVE only for these, and moves only to these. */
  modalities?: OrthancModality[];
  /** Reject associations whose called AE is not ours (Orthanc's default is to accept any). */
  checkCalledAet?: boolean;
  /** Anything else for the configuration (overrides the defaults). */
  extra?: Record<string, unknown>;
}

export interface OrthancPeer {
  aeTitle: string;
  port: number;
  httpPort: number;
  dir: string;
  pid: number | undefined;
  /** Loads Part 10 files through the REST API (POST /instances); resolves with Orthanc's instance ids. */
  upload(files: string[]): Promise<string[]>;
  /** GET on the REST API, parsed as JSON. */
  get(url: string): Promise<unknown>;
  /** What Orthanc wrote on stderr so far (for assertion messages). */
  log(): string;
  /** Stops it by pid (SIGTERM, SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** Stops it and removes its temp dir. */
  destroy(): Promise<void>;
}

/**
 * Starts Debian's Orthanc from a generated configuration in a temp dir, on free ports, with TCP_NODELAY=1 (set by
 * startProcess), and waits for GET /system.
 */
export async function startOrthanc(opts: OrthancOptions = {}): Promise<OrthancPeer> {
  const aeTitle = opts.aeTitle ?? 'ORTHANC';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-orthanc-'));
  const [port, httpPort] = [await freePort(), await freePort()];
  const modalities: Record<string, [string, string, number]> = {};
  for (const m of opts.modalities ?? [])
    modalities[m.aeTitle.toLowerCase()] = [m.aeTitle, m.host ?? '127.0.0.1', m.port];
  const config = {
    Name: `scannode-test-${process.pid}`,
    StorageDirectory: path.join(dir, 'storage'),
    IndexDirectory: path.join(dir, 'index'),
    Plugins: [],
    DicomAet: aeTitle,
    DicomPort: port,
    HttpPort: httpPort,
    HttpServerEnabled: true,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomModalities: modalities,
    DicomCheckCalledAet: opts.checkCalledAet ?? false,
    DefaultEncoding: 'Utf8',
    DicomAssociationCloseDelay: 0,
    SaveJobs: false,
    StorageCompression: false,
    ...opts.extra,
  };
  const configFile = path.join(dir, 'orthanc.json');
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
  const child = startProcess('Orthanc', [configFile]);
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const base = `http://127.0.0.1:${httpPort}`;
  let stopped = false;

  const get = async (url: string): Promise<unknown> => {
    const res = await fetch(base + url);
    if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
    return res.json();
  };

  const stop = async (): Promise<void> => {
    stopped = true;
    await stopProcess(child);
  };

  try {
    await waitFor(
      'Orthanc GET /system',
      async () => {
        if (child.exitCode !== null) throw new Error(`Orthanc exited with ${child.exitCode}: ${stderr}`);
        return (await get('/system')) as object;
      },
      30_000,
    );
    await waitForPort(port);
  } catch (err) {
    await stop();
    throw new Error(`Orthanc did not start: ${String(err)}\n${stderr.slice(-4000)}`);
  }

  return {
    aeTitle,
    port,
    httpPort,
    dir,
    pid: child.pid,
    async upload(files) {
      const ids: string[] = [];
      for (const file of files) {
        const res = await fetch(`${base}/instances`, { method: 'POST', body: fs.readFileSync(file) });
        if (!res.ok) throw new Error(`POST /instances ${file}: HTTP ${res.status} ${await res.text()}`);
        const body = (await res.json()) as { ID: string; Status: string };
        ids.push(body.ID);
      }
      return ids;
    },
    get,
    log: () => stderr,
    stop,
    async destroy() {
      if (!stopped) await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
