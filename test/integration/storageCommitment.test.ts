/** Storage Commitment Push Model SCP (PS3.4 J) with Orthanc as the scanner, and a malformed N-ACTION. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import dimse from 'dcmjs-dimse';
import { generateStudy, newUid } from '../helpers/dicomgen.js';
import { dulAssociate } from '../helpers/dulClient.js';
import { baseUrl } from '../helpers/http.js';
import { startTestNode } from '../helpers/node.js';
import { startOrthanc } from '../helpers/orthanc.js';
import { freePort, needPeer } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const SC = '1.2.840.10008.1.20.1';
const SC_INSTANCE = '1.2.840.10008.1.20.1.1';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const CT = '1.2.840.10008.5.1.4.1.1.2';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-commitment-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

type Report = { eventTypeId: number; dataset: Record<string, unknown> };

/** Sends one N-ACTION-RQ from `callingAe`; collects any N-EVENT-REPORT-RQ that comes on the same association. */
function requestCommitment(
  port: number,
  callingAe: string,
  transactionUid: string,
  refs: Array<[string, string]>,
  lingerMs: number,
  /** The status our requester answers a report with (not 0: it stays pending at the node). */
  answer = 0,
): Promise<{ status: number; reports: Report[] }> {
  return new Promise((resolve, reject) => {
    const client = new dimse.Client();
    const rq = new dimse.requests.NActionRequest(SC, SC_INSTANCE, 1);
    rq.setDataset(
      new dimse.Dataset({
        TransactionUID: transactionUid,
        ReferencedSOPSequence: refs.map(([c, i]) => ({ ReferencedSOPClassUID: c, ReferencedSOPInstanceUID: i })),
      }),
    );
    let status = -1;
    const reports: Report[] = [];
    rq.on('response', (r: { getStatus(): number }) => (status = r.getStatus()));
    client.on('nEventReportRequest', (req: dimse.requests.NEventReportRequest, cb: (r: unknown) => void) => {
      reports.push({ eventTypeId: req.getEventTypeId(), dataset: req.getDataset()!.getElements() });
      const rsp = dimse.responses.NEventReportResponse.fromRequest(req);
      rsp.setStatus(answer);
      cb(rsp);
    });
    client.on('networkError', reject);
    client.on('closed', () => resolve({ status, reports }));
    client.addRequest(rq);
    client.send('127.0.0.1', port, callingAe, 'SCANNODE', { associationLingerTimeout: lingerMs });
  });
}

/** A peer that accepts every context and answers N-EVENT-REPORT-RQ with Success, recording them. */
function startReportPeer(port: number): Promise<{ reports: Report[]; close(): void }> {
  const reports: Report[] = [];
  const Scp = dimse.Scp as unknown as new (socket: net.Socket) => object;
  class Peer extends Scp {
    associationRequested(association: {
      getPresentationContexts(): Array<{
        context: { setResult(r: number, ts?: string): void; getTransferSyntaxUids(): string[] };
      }>;
    }): void {
      (this as unknown as { association: unknown }).association = association;
      for (const { context } of association.getPresentationContexts()) {
        context.setResult(0, context.getTransferSyntaxUids()[0]);
      }
      (this as unknown as { sendAssociationAccept(): void }).sendAssociationAccept();
    }
    associationReleaseRequested(): void {
      (this as unknown as { sendAssociationReleaseResponse(): void }).sendAssociationReleaseResponse();
    }
    nEventReportRequest(req: dimse.requests.NEventReportRequest, cb: (r: unknown) => void): void {
      reports.push({ eventTypeId: req.getEventTypeId(), dataset: req.getDataset()!.getElements() });
      const rsp = dimse.responses.NEventReportResponse.fromRequest(req);
      rsp.setStatus(0);
      cb(rsp);
    }
  }
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    new Peer(socket);
  });
  return new Promise((resolve) =>
    server.listen(port, '127.0.0.1', () =>
      resolve({
        reports,
        close: () => {
          for (const s of sockets) s.destroy();
          server.close();
        },
      }),
    ),
  );
}

interface OrthancReport {
  Status: string;
  Success?: Array<{ SOPClassUID: string; SOPInstanceUID: string }>;
  Failures?: Array<{ SOPClassUID: string; SOPInstanceUID: string; FailureReason: number }>;
}

describe('storage commitment SCP', () => {
  test('Orthanc stores a study with commitment: every instance committed; an unknown one fails 0x0112', async (t) => {
    if (!needPeer(t, 'Orthanc')) return;
    const port = await freePort();
    const orthanc = await startOrthanc({ aeTitle: 'ORTHANCSC', modalities: [{ aeTitle: 'SCANNODE', port }] });
    t.after(() => orthanc.destroy());
    const node = await startTestNode({
      dicom: { port },
      extra: { scanner: { aeTitle: 'ORTHANCSC', host: '127.0.0.1', port: orthanc.port } },
    });
    t.after(() => node.destroy());
    const study = generateStudy({ dir: path.join(tmp, 'study'), series: 2, perSeries: 3 });
    await orthanc.upload(study.map((s) => s.file));
    const base = `http://127.0.0.1:${orthanc.httpPort}`;
    const studies = (await orthanc.get('/studies')) as string[];
    const res = await fetch(`${base}/modalities/scannode/store`, {
      method: 'POST',
      body: JSON.stringify({ Resources: studies, StorageCommitment: true, Synchronous: true }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const job = (await res.json()) as Record<string, unknown>;
    const uid = job.StorageCommitmentTransactionUID as string;
    assert.ok(uid, `no transaction UID in ${JSON.stringify(job)}`);
    const report = await waitFor(
      'Orthanc storage-commitment report',
      async () => {
        const r = (await orthanc.get(`/storage-commitment/${uid}`)) as OrthancReport;
        return r.Status === 'Pending' ? undefined : r;
      },
      30_000,
    );
    t.diagnostic(`Orthanc reported: ${JSON.stringify(report)}`);
    assert.equal(report.Status, 'Success', JSON.stringify(report));
    assert.equal(report.Success?.length, study.length);
    assert.deepEqual(report.Failures ?? [], []);

    // An instance scannode never received.
    const ghost = newUid();
    const rq = await fetch(`${base}/modalities/scannode/storage-commitment`, {
      method: 'POST',
      body: JSON.stringify({
        DicomInstances: [
          { SOPClassUID: MR, SOPInstanceUID: ghost },
          { SOPClassUID: MR, SOPInstanceUID: study[0]!.sopInstanceUid },
          // Received as MR: a class / instance conflict.
          { SOPClassUID: CT, SOPInstanceUID: study[1]!.sopInstanceUid },
        ],
      }),
    });
    assert.equal(rq.status, 200, await rq.clone().text());
    const { ID } = (await rq.json()) as { ID: string };
    const second = await waitFor(
      'Orthanc second report',
      async () => {
        const r = (await orthanc.get(`/storage-commitment/${ID}`)) as OrthancReport;
        return r.Status === 'Pending' ? undefined : r;
      },
      30_000,
    );
    t.diagnostic(`Orthanc reported: ${JSON.stringify(second)}`);
    assert.equal(second.Status, 'Failure');
    assert.deepEqual(
      second.Failures?.map((f) => [f.SOPInstanceUID, f.FailureReason]),
      [
        [ghost, 0x0112],
        [study[1]!.sopInstanceUid, 0x0119],
      ],
    );
    assert.deepEqual(
      second.Success?.map((s) => s.SOPInstanceUID),
      [study[0]!.sopInstanceUid],
    );
    // The results per requesting remote, in the metrics: 6 + 1 committed, 2 failed.
    const metrics = await (await fetch(`${baseUrl(node)}/metrics`)).text();
    const count = (result: string) =>
      Number(
        new RegExp(
          `^scannode_commitment_instances_total\\{remote="scanner",result="${result}"[^}]*\\} (\\d+)$`,
          'm',
        ).exec(metrics)?.[1],
      );
    assert.deepEqual([count('committed'), count('failed')], [study.length + 1, 2]);
  });

  test('an N-ACTION with a malformed data set gets a failure status; the node stays up', async (t) => {
    const node = await startTestNode();
    t.after(() => node.destroy());
    const ctx = { id: 1, abstractSyntax: SC, transferSyntaxes: ['1.2.840.10008.1.2.1'] };
    const a = await dulAssociate({ port: node.port, contexts: [ctx] });
    const command = {
      CommandField: 0x0130,
      MessageID: 1,
      RequestedSOPClassUID: SC,
      RequestedSOPInstanceUID: SC_INSTANCE,
      ActionTypeID: 1,
    };
    // (0008,1195) UI with a length running past the end.
    const bad = Buffer.from([0x08, 0x00, 0x95, 0x11, 0x55, 0x49, 0xff, 0x00, 0x31, 0x2e]);
    const rsp = await a.request(1, command, bad);
    assert.equal(rsp.command.Status, 0x0110, JSON.stringify(rsp.command));
    // A data set without the Transaction UID: missing attribute.
    const empty = Buffer.from([0x08, 0x00, 0x50, 0x00, 0x53, 0x48, 0x02, 0x00, 0x41, 0x20]);
    const rsp2 = await a.request(1, { ...command, MessageID: 2 }, empty);
    assert.equal(rsp2.command.Status, 0x0120, JSON.stringify(rsp2.command));
    await a.release();
    const again = await dulAssociate({ port: node.port, contexts: [ctx] });
    await again.release();
  });

  test('the report comes on the same association while the requester keeps it open', async (t) => {
    const node = await startTestNode();
    t.after(() => node.destroy());
    const ghost = newUid();
    const uid = newUid();
    const { status, reports } = await requestCommitment(node.port, 'MODALITY', uid, [[MR, ghost]], 2000);
    assert.equal(status, 0);
    assert.equal(reports.length, 1, 'one N-EVENT-REPORT on the same association');
    assert.equal(reports[0]!.eventTypeId, 2);
    const ds = reports[0]!.dataset as {
      TransactionUID: string;
      FailedSOPSequence: Array<{ ReferencedSOPInstanceUID: string; FailureReason: number }>;
    };
    assert.equal(ds.TransactionUID, uid);
    assert.deepEqual(
      ds.FailedSOPSequence.map((f) => [f.ReferencedSOPInstanceUID, f.FailureReason]),
      [[ghost, 0x0112]],
    );
  });

  test('a request persisted across a restart is reported on a new association once the requester is up', async (t) => {
    const peerPort = await freePort();
    const node = await startTestNode({
      extra: {
        scanner: { aeTitle: 'REQUESTER', host: '127.0.0.1', port: peerPort },
        storageCommitment: { retrySeconds: 3600 },
      },
    });
    t.after(() => node.destroy());
    const uid = newUid();
    const ghost = newUid();
    // The requester refuses the report on its association (0x0110) and is not listening yet: it stays pending.
    const { status, reports } = await requestCommitment(node.port, 'REQUESTER', uid, [[MR, ghost]], 1000, 0x0110);
    assert.equal(status, 0);
    assert.equal(reports.length, 1);
    const peer = await startReportPeer(peerPort);
    t.after(() => peer.close());
    await node.restart();
    await waitFor('the report after the restart', async () => (peer.reports.length > 0 ? true : undefined), 15_000);
    assert.equal(peer.reports.length, 1);
    assert.equal((peer.reports[0]!.dataset as { TransactionUID: string }).TransactionUID, uid);
  });
});
