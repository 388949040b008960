import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import dimse from 'dcmjs-dimse';
import {
  ScuAbortedError,
  ScuConnectError,
  ScuRejectedError,
  ScuStatusError,
  ScuTimeoutError,
  cFind,
  cMove,
  type ScuPeer,
} from '../../src/dimse/scu.js';
import { DicomStatus as QR_STATUS } from '../../src/domain/status.js';
import { isFailure } from '../../src/domain/statusTable.js';
import { generateStudy, type GeneratedInstance } from '../helpers/dicomgen.js';
import { startDcmqrscp } from '../helpers/dcmqrscp.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { startOrthanc } from '../helpers/orthanc.js';
import { freePort, needPeer } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const CALLING = 'SCANNODE';
const OPTS = { timeoutMs: 30_000 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-scu-'));

let node: TestNode | undefined;
before(async () => {
  node = await startTestNode();
});
after(async () => {
  await node?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function available(...cmds: string[]): boolean {
  return cmds.every((c) => {
    try {
      execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
}

function hex(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** What a scanner under test looks like to the tests below. */
interface Scanner {
  peer: ScuPeer;
  stop(): Promise<void>;
  destroy(): Promise<void>;
  log(): string;
}

interface PeerCase {
  name: string;
  cmds: string[];
  start(files: string[], destPort: number): Promise<Scanner>;
  /** Whether its SERIES-level answers carry NumberOfSeriesRelatedInstances. */
  seriesCounts: boolean;
  /** Whether it returns SeriesDescription (dcmqrscp's index does not keep it). */
  seriesDescription: boolean;
  /** What it answers to a C-MOVE whose destination it does not know. */
  unknownDestinationStatus: number;
}

const CASES: PeerCase[] = [
  {
    name: 'Orthanc',
    cmds: ['Orthanc'],
    seriesCounts: true,
    seriesDescription: true,
    // Orthanc 1.10.1: "Unknown modality for AET" ends as 0xC000 (unable to process), not 0xA801.
    unknownDestinationStatus: 0xc000,
    async start(files, destPort) {
      const o = await startOrthanc({
        aeTitle: 'ORTHANCQR',
        modalities: [{ aeTitle: CALLING, port: destPort }],
        // Orthanc accepts any called AE unless told; the rejection test needs it to check.
        checkCalledAet: true,
      });
      await o.upload(files);
      return {
        peer: { aeTitle: o.aeTitle, host: '127.0.0.1', port: o.port },
        stop: o.stop,
        destroy: o.destroy,
        log: o.log,
      };
    },
  },
  {
    name: 'dcmqrscp',
    cmds: ['dcmqrscp', 'dcmqridx'],
    seriesCounts: false,
    seriesDescription: false,
    unknownDestinationStatus: QR_STATUS.MoveDestinationUnknown,
    async start(files, destPort) {
      const q = await startDcmqrscp({
        aeTitle: 'QRSCP',
        destinations: [{ aeTitle: CALLING, port: destPort }],
        files,
      });
      return {
        peer: { aeTitle: q.aeTitle, host: '127.0.0.1', port: q.port },
        stop: q.stop,
        destroy: q.destroy,
        log: q.log,
      };
    },
  },
];

for (const c of CASES) {
  describe(`query/retrieve SCU against ${c.name}`, () => {
    let scanner: Scanner | undefined;
    let study: GeneratedInstance[] = [];
    const accession = `ACC-${c.name.toUpperCase().slice(0, 6)}-${process.pid}`;
    const studyUid = (): string => study[0]!.studyInstanceUid;
    const seriesUids = (): string[] => [...new Set(study.map((s) => s.seriesInstanceUid))];
    const sopsOf = (series: string): string[] =>
      study.filter((s) => s.seriesInstanceUid === series).map((s) => s.sopInstanceUid);

    before(async () => {
      if (!available(...c.cmds) || !node) return;
      study = generateStudy({ dir: path.join(tmp, c.name), series: 2, perSeries: 3, accessionNumber: accession });
      scanner = await c.start(
        study.map((s) => s.file),
        node.port,
      );
    });
    after(async () => scanner?.destroy());

    test('STUDY C-FIND by StudyInstanceUID and by AccessionNumber', async (t) => {
      if (!needPeer(t, ...c.cmds) || !scanner) return;
      const byUid = await cFind(scanner.peer, CALLING, 'STUDY', { StudyInstanceUID: studyUid() }, OPTS);
      assert.equal(byUid.length, 1, JSON.stringify(byUid));
      assert.equal(byUid[0]!.StudyInstanceUID, studyUid());
      assert.equal(byUid[0]!.AccessionNumber, accession);
      assert.equal(byUid[0]!.PatientID, 'SN-TEST-1');

      const byAcc = await cFind(scanner.peer, CALLING, 'STUDY', { AccessionNumber: accession }, OPTS);
      assert.equal(byAcc.length, 1, JSON.stringify(byAcc));
      assert.equal(byAcc[0]!.StudyInstanceUID, studyUid());

      const none = await cFind(scanner.peer, CALLING, 'STUDY', { AccessionNumber: 'NO-SUCH-ACC' }, OPTS);
      assert.deepEqual(none, []);
    });

    test(`SERIES C-FIND lists both series ${c.seriesCounts ? 'with' : 'without'} counts`, async (t) => {
      if (!needPeer(t, ...c.cmds) || !scanner) return;
      const rows = await cFind(scanner.peer, CALLING, 'SERIES', { StudyInstanceUID: studyUid() }, OPTS);
      t.diagnostic(`${c.name} SERIES row: ${JSON.stringify(rows[0])}`);
      assert.deepEqual(rows.map((r) => r.SeriesInstanceUID).sort(), seriesUids().sort(), JSON.stringify(rows));
      for (const r of rows) {
        assert.equal(r.Modality, 'MR');
        assert.equal(Number(r.SeriesNumber), seriesUids().indexOf(r.SeriesInstanceUID as string) + 1);
        if (c.seriesDescription) assert.match(String(r.SeriesDescription), /^series \d$/);
        else assert.equal(r.SeriesDescription, undefined);
        if (c.seriesCounts) assert.equal(Number(r.NumberOfSeriesRelatedInstances), 3, JSON.stringify(r));
        else assert.equal(r.NumberOfSeriesRelatedInstances, undefined, JSON.stringify(r));
      }
    });

    test('IMAGE C-FIND lists every SOP Instance UID of a series', async (t) => {
      if (!needPeer(t, ...c.cmds) || !scanner) return;
      for (const series of seriesUids()) {
        const rows = await cFind(
          scanner.peer,
          CALLING,
          'IMAGE',
          { StudyInstanceUID: studyUid(), SeriesInstanceUID: series },
          OPTS,
        );
        assert.deepEqual(rows.map((r) => r.SOPInstanceUID).sort(), sopsOf(series).sort());
      }
    });

    test('SERIES C-MOVE lands every instance of the series in scannode', async (t) => {
      if (!needPeer(t, ...c.cmds) || !scanner || !node) return;
      const series = seriesUids()[0]!;
      const r = await cMove(
        scanner.peer,
        CALLING,
        CALLING,
        'SERIES',
        { studyInstanceUid: studyUid(), seriesInstanceUid: series },
        OPTS,
      );
      t.diagnostic(`${c.name} SERIES C-MOVE: ${JSON.stringify(r)}`);
      assert.equal(r.status, QR_STATUS.Success, `${hex(r.status)} ${JSON.stringify(r)}`);
      assert.equal(r.completed, 3);
      assert.equal(r.failed, 0);
      assert.equal(r.remaining, 0);
      const want = sopsOf(series);
      const rows = await waitFor('moved rows', async () => {
        const have = (await node!.instances()).filter((i) => want.includes(i.sopInstanceUid));
        return have.length === want.length ? have : undefined;
      });
      for (const row of rows) assert.equal(row.seriesInstanceUid, series);
    });

    test('IMAGE C-MOVE of two instances moves exactly those', async (t) => {
      if (!needPeer(t, ...c.cmds) || !scanner || !node) return;
      const series = seriesUids()[1]!;
      const [a, b, notMoved] = sopsOf(series);
      const r = await cMove(
        scanner.peer,
        CALLING,
        CALLING,
        'IMAGE',
        { studyInstanceUid: studyUid(), seriesInstanceUid: series, sopInstanceUids: [a!, b!] },
        OPTS,
      );
      t.diagnostic(`${c.name} IMAGE C-MOVE: ${JSON.stringify(r)}`);
      assert.equal(r.status, QR_STATUS.Success, `${hex(r.status)} ${JSON.stringify(r)}`);
      assert.equal(r.completed, 2);
      assert.equal(r.failed, 0);
      await waitFor('moved rows', async () => {
        const have = new Set((await node!.instances()).map((i) => i.sopInstanceUid));
        return have.has(a!) && have.has(b!);
      });
      const have = new Set((await node.instances()).map((i) => i.sopInstanceUid));
      assert.ok(!have.has(notMoved!), 'the third instance was not asked for');
    });

    test('IMAGE C-MOVE split over several requests in one association adds up the counts', async (t) => {
      if (!needPeer(t, ...c.cmds) || !scanner || !node) return;
      const series = seriesUids()[1]!;
      const sops = sopsOf(series);
      const r = await cMove(
        scanner.peer,
        CALLING,
        CALLING,
        'IMAGE',
        { studyInstanceUid: studyUid(), seriesInstanceUid: series, sopInstanceUids: sops },
        { ...OPTS, maxUidsPerRequest: 2 },
      );
      t.diagnostic(`${c.name} IMAGE C-MOVE in 2 requests: ${JSON.stringify(r)}`);
      assert.equal(r.status, QR_STATUS.Success, `${hex(r.status)} ${JSON.stringify(r)}`);
      assert.equal(r.completed, 3, 'two re-sent (identical duplicates) and one new');
      assert.equal(r.failed, 0);
      await waitFor('all of series 2', async () => {
        const have = new Set((await node!.instances()).map((i) => i.sopInstanceUid));
        return sops.every((s) => have.has(s));
      });
    });

    test('C-MOVE to an unknown destination AE answers a failure status', async (t) => {
      if (!needPeer(t, ...c.cmds) || !scanner) return;
      const r = await cMove(
        scanner.peer,
        CALLING,
        'NOSUCHDEST',
        'SERIES',
        { studyInstanceUid: studyUid(), seriesInstanceUid: seriesUids()[0]! },
        OPTS,
      );
      t.diagnostic(`${c.name} unknown destination: status ${hex(r.status)} ${JSON.stringify(r)}`);
      assert.ok(isFailure(r.status));
      assert.equal(r.status, c.unknownDestinationStatus, `${hex(r.status)} ${JSON.stringify(r)}`);
      assert.equal(r.completed, 0);
    });

    test('a wrong called AE title is rejected (ScuRejectedError)', async (t) => {
      if (!needPeer(t, ...c.cmds) || !scanner) return;
      const wrong = { ...scanner.peer, aeTitle: 'NOT_THE_AE' };
      const err = await cFind(wrong, CALLING, 'STUDY', { StudyInstanceUID: studyUid() }, OPTS).then(
        () => assert.fail('expected a rejection'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ScuRejectedError, String(err));
      t.diagnostic(`${c.name} rejects: ${err.message}`);
      assert.equal(err.result, 1);
      assert.equal(err.source, 1);
      assert.equal(err.reason, 7, 'called AE title not recognized');
    });

    test('a stopped peer gives ScuConnectError', async (t) => {
      if (!needPeer(t, ...c.cmds) || !scanner) return;
      await scanner.stop();
      const err = await cFind(scanner.peer, CALLING, 'STUDY', { StudyInstanceUID: studyUid() }, OPTS).then(
        () => assert.fail('expected a connect error'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ScuConnectError, String(err));
      const err2 = await cMove(scanner.peer, CALLING, CALLING, 'STUDY', { studyInstanceUid: studyUid() }, OPTS).then(
        () => assert.fail('expected a connect error'),
        (e: unknown) => e,
      );
      assert.ok(err2 instanceof ScuConnectError, String(err2));
    });
  });
}

// --- behaviour no real peer shows on demand: a fake SCP on the library's own Scp class --------------------------

type Mode = 'pending-forever' | 'pending-warning' | 'find-failure' | 'abort';

interface FakeScpLike {
  association: unknown;
  sendAssociationAccept(): void;
  sendAbort(): void;
  socket: net.Socket;
}

const { Scp, Dataset, responses } = dimse as unknown as {
  Scp: new (socket: net.Socket, opts?: object) => FakeScpLike;
  Dataset: typeof dimse.Dataset;
  responses: typeof dimse.responses;
};

function startFakeScp(mode: Mode): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  class FakeScp extends Scp {
    associationRequested(association: {
      getPresentationContexts(): Array<{
        context: { setResult(r: number, ts?: string): void; getTransferSyntaxUids(): string[] };
      }>;
    }): void {
      this.association = association;
      for (const { context } of association.getPresentationContexts()) {
        context.setResult(0, context.getTransferSyntaxUids()[0]);
      }
      this.sendAssociationAccept();
    }
    associationReleaseRequested(): void {
      (this as unknown as { sendAssociationReleaseResponse(): void }).sendAssociationReleaseResponse();
    }
    cFindRequest(request: dimse.requests.CFindRequest, callback: (r: unknown[]) => void): void {
      const rsp = (status: number, elements?: Record<string, unknown>) => {
        const r = responses.CFindResponse.fromRequest(request);
        r.setStatus(status);
        if (elements) r.setDataset(new Dataset(elements));
        return r;
      };
      const match = (n: number) => ({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: `1.2.3.${n}   ` });
      // The library's callback may be called once only; later responses go through sendResponse.
      const send = (this as unknown as { sendResponse(rq: unknown, rs: unknown): void }).sendResponse.bind(this);
      if (mode === 'pending-forever') {
        let n = 0;
        const timer = setInterval(() => send(request, rsp(QR_STATUS.Pending, match(++n))), 50);
        timers.add(timer);
        this.socket.on('close', () => clearInterval(timer));
      } else if (mode === 'pending-warning') {
        // The rest comes later, as from a real SCP searching its database: an SCU that took 0xFF01 for the final
        // response has released the association by then.
        callback([rsp(QR_STATUS.PendingWarning, match(1))]);
        const timer = setTimeout(() => {
          send(request, rsp(QR_STATUS.Pending, match(2)));
          send(request, rsp(0));
        }, 200);
        timers.add(timer);
      } else if (mode === 'find-failure') {
        callback([rsp(0xc001)]);
      } else {
        callback([rsp(QR_STATUS.Pending, match(1))]);
        setTimeout(() => this.sendAbort(), 50);
      }
    }
  }
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    new FakeScp(socket);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            for (const t of timers) clearTimeout(t);
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

describe('query/retrieve SCU edge cases (fake peers)', () => {
  const fake = (port: number): ScuPeer => ({ aeTitle: 'FAKE', host: '127.0.0.1', port });

  test('nothing listening: ScuConnectError', async () => {
    const port = await freePort();
    await assert.rejects(cFind(fake(port), CALLING, 'STUDY', {}, OPTS), ScuConnectError);
  });

  test('a peer that accepts TCP and never answers: ScuTimeoutError at the deadline', async () => {
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const started = Date.now();
      const port = (server.address() as net.AddressInfo).port;
      const err = await cFind(fake(port), CALLING, 'STUDY', {}, { timeoutMs: 800 }).catch((e: unknown) => e);
      assert.ok(err instanceof ScuTimeoutError, String(err));
      assert.equal(err.stage, 'association accept');
      assert.ok(Date.now() - started < 3000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  test('a peer that keeps answering Pending: ScuTimeoutError, association aborted', async () => {
    const scp = await startFakeScp('pending-forever');
    try {
      const started = Date.now();
      const err = await cFind(fake(scp.port), CALLING, 'STUDY', {}, { timeoutMs: 1000 }).catch((e: unknown) => e);
      assert.ok(err instanceof ScuTimeoutError, String(err));
      assert.match(err.stage, /final C-FIND response/);
      assert.ok(Date.now() - started < 3000);
    } finally {
      await scp.close();
    }
  });

  test('0xFF01 Pending is not mistaken for the final response; values are trimmed', async () => {
    const scp = await startFakeScp('pending-warning');
    try {
      const rows = await cFind(fake(scp.port), CALLING, 'STUDY', {}, OPTS);
      assert.deepEqual(
        rows.map((r) => r.StudyInstanceUID),
        ['1.2.3.1', '1.2.3.2'],
      );
    } finally {
      await scp.close();
    }
  });

  test('a C-FIND failure status throws ScuStatusError with the status', async () => {
    const scp = await startFakeScp('find-failure');
    try {
      const err = await cFind(fake(scp.port), CALLING, 'STUDY', {}, OPTS).catch((e: unknown) => e);
      assert.ok(err instanceof ScuStatusError, String(err));
      assert.equal(err.status, 0xc001);
    } finally {
      await scp.close();
    }
  });

  test('an A-ABORT before the final response: ScuAbortedError', async () => {
    const scp = await startFakeScp('abort');
    try {
      const err = await cFind(fake(scp.port), CALLING, 'STUDY', {}, OPTS).catch((e: unknown) => e);
      assert.ok(err instanceof ScuAbortedError, String(err));
    } finally {
      await scp.close();
    }
  });

  test('scannode itself rejects a wrong called AE (ScuRejectedError)', async () => {
    assert.ok(node);
    const err = await cFind({ aeTitle: 'WRONG', host: '127.0.0.1', port: node.port }, CALLING, 'STUDY', {}, OPTS).catch(
      (e: unknown) => e,
    );
    assert.ok(err instanceof ScuRejectedError, String(err));
    assert.equal(err.reason, 7);
  });
});
