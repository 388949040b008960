import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { DicomServer } from '../../src/dimse/server.js';
import { encodeCommandSet } from '../../src/dimse/commandSet.js';
import { encodeAssociateRq } from '../../src/dimse/associatePdu.js';
import { pdataPdu } from '../../src/dimse/pdu.js';
import { DimseError } from '../../src/domain/status.js';
import type { DimseHandlers, StoreSink } from '../../src/dimse/types.js';
import { dulAssociate } from '../helpers/dulClient.js';
import { associateRq } from '../helpers/associateRq.js';
import { fakeLog } from '../helpers/log.js';
import { listFiles } from '../helpers/files.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { needPeer, run } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const MR = '1.2.840.10008.5.1.4.1.1.4';
const MPPS = '1.2.840.10008.3.1.2.3.3';
const IMPLICIT = '1.2.840.10008.1.2';
const EXPLICIT = '1.2.840.10008.1.2.1';

/** Nothing may reach the process's last-resort handlers while these tests run. */
const escaped: unknown[] = [];
const onEscape = (err: unknown) => escaped.push(err);
beforeEach(() => {
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
});
afterEach(() => {
  process.off('uncaughtException', onEscape);
  process.off('unhandledRejection', onEscape);
  assert.deepEqual(escaped, [], 'nothing reached uncaughtException / unhandledRejection');
});

const storeRq = (id: number, sop: string) => ({
  CommandField: 0x0001,
  MessageID: id,
  Priority: 0,
  AffectedSOPClassUID: MR,
  AffectedSOPInstanceUID: sop,
});

/** 100 000 sequences, each in an item of the one before (undefined lengths): 3.6 MB. */
function deeplyNested(depth: number, explicit: boolean): Buffer {
  const open = explicit
    ? Buffer.from([
        0x08, 0x00, 0x15, 0x11, 0x53, 0x51, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff,
        0xff,
      ])
    : Buffer.from([0x08, 0x00, 0x15, 0x11, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]);
  const close = Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0, 0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  return Buffer.concat([...Array<Buffer>(depth).fill(open), ...Array<Buffer>(depth).fill(close)]);
}

describe('containment: what a handler throws ends at most its own request', () => {
  const { log, lines } = fakeLog();
  let server: DicomServer;
  let port = 0;
  const aborted: string[] = [];
  before(async () => {
    const handlers: DimseHandlers = {
      openStore(req) {
        const kind = req.sopInstanceUid.split('.').pop();
        if (kind === '1') throw new Error('openStore blew up');
        const sink: StoreSink = {
          write() {
            if (kind === '2') throw new Error('write blew up');
          },
          finish: () => (kind === '3' ? Promise.reject(new Error('finish blew up')) : Promise.resolve({ status: 0 })),
          abort: (reason) => void aborted.push(reason),
        };
        return sink;
      },
      nCreate: () => Promise.reject(new TypeError('nCreate blew up')),
      nSet: () => Promise.reject(new DimseError(0x0112, 'no such step')),
      associationClosed: () => {
        throw new Error('audit blew up');
      },
      storeCompleted: () => {
        throw new Error('metrics blew up');
      },
    };
    server = new DicomServer(
      {
        aeTitle: 'SCANNODE',
        allowedCallingAeTitles: [],
        maxAssociations: 8,
        host: '127.0.0.1',
        port: 0,
        maxPduLength: 131072,
        artimTimeoutSeconds: 5,
        idleTimeoutSeconds: 10,
        maxPendingConnections: 16,
        shutdownGraceSeconds: 1,
        implementationClassUid: '1.2.3.4',
        implementationVersionName: 'TEST',
      },
      handlers,
      log,
    );
    await server.listen();
    port = server.address().port;
  });
  after(async () => server?.close());

  test('openStore, write and finish that throw, hooks that throw: failure statuses, the association goes on', async () => {
    const assoc = await dulAssociate({
      port,
      contexts: [
        { id: 1, abstractSyntax: MR, transferSyntaxes: [IMPLICIT] },
        { id: 3, abstractSyntax: MPPS, transferSyntaxes: [EXPLICIT] },
      ],
    });
    const statuses: number[] = [];
    for (const [i, sop] of ['1.2.3.1', '1.2.3.2', '1.2.3.3', '1.2.3.4'].entries()) {
      const rsp = await assoc.request(1, storeRq(i + 1, sop), Buffer.alloc(5000, 1));
      statuses.push(rsp.command.Status as number);
    }
    assert.deepEqual(statuses, [0x0110, 0x0110, 0x0110, 0x0000]);
    const create = await assoc.request(
      3,
      { CommandField: 0x0140, MessageID: 9, AffectedSOPClassUID: MPPS, AffectedSOPInstanceUID: '1.2.9' },
      Buffer.alloc(0),
    );
    assert.equal(create.command.Status, 0x0110);
    const set = await assoc.request(
      3,
      { CommandField: 0x0120, MessageID: 10, RequestedSOPClassUID: MPPS, RequestedSOPInstanceUID: '1.2.9' },
      Buffer.alloc(0),
    );
    assert.equal(set.command.Status, 0x0112);
    await assoc.release();
    await waitFor('the audit hook', () => lines.some((l) => l.message === 'association audit failed'));
    assert.ok(lines.some((l) => l.message === 'C-STORE completion hook failed'));
    assert.ok(server.listening);
  });

  test('a command the SCP does not perform gets 0x0211; a C-STORE naming another SOP class than its context, 0x0122', async () => {
    const assoc = await dulAssociate({ port, contexts: [{ id: 1, abstractSyntax: MR, transferSyntaxes: [IMPLICIT] }] });
    const find = await assoc.request(
      1,
      { CommandField: 0x0020, MessageID: 1, AffectedSOPClassUID: MR, Priority: 0 },
      Buffer.alloc(10),
    );
    assert.deepEqual([find.command.CommandField, find.command.Status], [0x8020, 0x0211]);
    const ct = await assoc.request(
      1,
      { ...storeRq(2, '1.2.3.4'), AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2' },
      Buffer.alloc(10),
    );
    assert.equal(ct.command.Status, 0x0122);
    await assoc.release();
  });
});

describe('hostile data sets and vanishing peers against the whole node', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
  });
  after(async () => node?.destroy());

  const echoOk = async () => {
    const r = await run('echoscu', ['-aec', 'SCANNODE', '127.0.0.1', String(node.port)]);
    assert.equal(r.code, 0, `the node still answers C-ECHO: ${r.stderr}`);
  };

  test('an MPPS N-CREATE whose data set nests 100 000 sequences: processing failure, the node stays up', async (t) => {
    if (!needPeer(t, 'echoscu')) return;
    const assoc = await dulAssociate({
      port: node.port,
      contexts: [{ id: 1, abstractSyntax: MPPS, transferSyntaxes: [EXPLICIT] }],
    });
    const rsp = await assoc.request(
      1,
      {
        CommandField: 0x0140,
        MessageID: 1,
        AffectedSOPClassUID: MPPS,
        AffectedSOPInstanceUID: '1.2.826.0.1.3680043.10.1561.99.1',
      },
      deeplyNested(100_000, true),
    );
    assert.equal(rsp.command.Status, 0x0110);
    assert.match(String(rsp.command.ErrorComment), /too-deep/);
    await assoc.release();
    await echoOk();
  });

  test('a C-STORE whose data set nests 100 000 sequences: a C000-range failure, the node stays up', async (t) => {
    if (!needPeer(t, 'echoscu')) return;
    // The C-STORE header scan is the spool's (issue 12): on dcmjs it blocks the event loop for minutes on this data
    // set; with the shared walker (src/storage/headerScan.ts) it answers at once.
    if (!fs.existsSync(new URL('../../src/storage/headerScan.js', import.meta.url))) {
      t.todo('waits for the walker-based C-STORE header scan (src/storage/headerScan.ts)');
      return;
    }
    const assoc = await dulAssociate({
      port: node.port,
      contexts: [{ id: 1, abstractSyntax: MR, transferSyntaxes: [IMPLICIT] }],
    });
    const rsp = await assoc.request(1, storeRq(1, '1.2.826.0.1.3680043.10.1561.99.2'), deeplyNested(100_000, false));
    const status = rsp.command.Status as number;
    assert.ok(status >= 0xc000 && status <= 0xcfff, `status 0x${status.toString(16)}`);
    await assoc.release();
    await echoOk();
    assert.deepEqual(await node.instances(), []);
  });

  test('a peer that resets in the middle of a PDU of a data set: its partial file is removed, the node stays up', async (t) => {
    if (!needPeer(t, 'echoscu')) return;
    const socket = net.connect(node.port, '127.0.0.1');
    socket.on('error', () => undefined);
    const accepted = new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.write(
      encodeAssociateRq(
        associateRq({
          callingAe: 'RESETTER',
          presentationContexts: [{ id: 1, abstractSyntax: MR, transferSyntaxes: [IMPLICIT] }],
        }),
      ),
    );
    await accepted;
    socket.write(
      pdataPdu(
        1,
        0x03,
        encodeCommandSet({ ...storeRq(1, '1.2.826.0.1.3680043.10.1561.99.3'), CommandDataSetType: 0 })!,
      ),
    );
    const chunk = Buffer.alloc(131072 - 6, 0x41);
    for (let i = 0; i < 40; i++) socket.write(pdataPdu(1, 0x00, chunk));
    const incoming = path.join(node.dataDir, 'incoming');
    // A transfer in flight: a spool pool file with data in it (listFiles leaves out the empty ready ones).
    const partial = () =>
      listFiles(incoming).some((f) => f.endsWith('.part') || path.basename(path.dirname(f)) === '.pool');
    await waitFor('a partial file', partial);
    const half = pdataPdu(1, 0x00, chunk);
    await new Promise<void>((resolve) => socket.write(half.subarray(0, 50_000), () => resolve()));
    socket.resetAndDestroy();
    await waitFor('the partial file removed', () => !fs.existsSync(incoming) || !partial());
    await echoOk();
  });
});
