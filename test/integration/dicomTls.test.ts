import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cFind } from '../../src/dimse/scu.js';
import { echo } from '../../src/dimse/echo.js';
import { encodeAssociateRq } from '../../src/dimse/associatePdu.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { startOrthanc, type OrthancPeer } from '../helpers/orthanc.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { needPeer, run } from '../helpers/peers.js';
import { makeTestCerts, type TestCerts } from '../helpers/tlsCerts.js';
import { associateRq } from '../helpers/associateRq.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-tls-'));
let certs: TestCerts;
before(() => {
  certs = makeTestCerts(path.join(tmp, 'certs'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const tlsPort = (n: TestNode) => n.node.dicom.tlsAddress()!.port;

describe('DICOM TLS listener (client certificate required), beside the plain port', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode({
      dicom: { tls: { port: 0, cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, requireClientCert: true } },
    });
  });
  after(async () => node?.destroy());

  test('DCMTK echoscu +tls and storescu +tls with a client certificate from our CA', async (t) => {
    if (!needPeer(t, 'echoscu', 'storescu')) return;
    const tlsArgs = ['+tls', certs.clientKey, certs.clientCert, '+cf', certs.ca];
    const e = await run('echoscu', ['-aec', 'SCANNODE', ...tlsArgs, '127.0.0.1', String(tlsPort(node))]);
    assert.equal(e.code, 0, e.stderr);
    const [inst] = generateStudy({ dir: path.join(tmp, 'study'), series: 1, perSeries: 1 });
    const s = await run('storescu', ['-aec', 'SCANNODE', ...tlsArgs, '127.0.0.1', String(tlsPort(node)), inst!.file]);
    assert.equal(s.code, 0, s.stderr);
    const rows = await node.instances();
    assert.deepEqual(
      rows.map((r) => r.sopInstanceUid),
      [inst!.sopInstanceUid],
    );
    // The plain port still answers.
    const plain = await run('echoscu', ['-aec', 'SCANNODE', '127.0.0.1', String(node.port)]);
    assert.equal(plain.code, 0, plain.stderr);
  });

  test('a client without a certificate, or with one from another CA, is refused in the handshake', async (t) => {
    if (!needPeer(t, 'echoscu')) return;
    // +tla: anonymous TLS (no client certificate).
    const anon = await run('echoscu', [
      '-aec',
      'SCANNODE',
      '+tla',
      '+cf',
      certs.ca,
      '127.0.0.1',
      String(tlsPort(node)),
    ]);
    assert.notEqual(anon.code, 0, 'refused without a certificate');
    const stranger = await run('echoscu', [
      '-aec',
      'SCANNODE',
      '+tls',
      certs.strangerKey,
      certs.strangerCert,
      '+cf',
      certs.ca,
      '127.0.0.1',
      String(tlsPort(node)),
    ]);
    assert.notEqual(stranger.code, 0, 'refused with a certificate of another CA');
    // scannode's own SCU: with our CA's client certificate it passes, without it does not.
    const peer = { aeTitle: 'SCANNODE', host: '127.0.0.1', port: tlsPort(node) };
    await echo({ ...peer, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } }, 'SCU', 10_000);
    await assert.rejects(echo({ ...peer, tls: { ca: certs.ca } }, 'SCU', 10_000));
  });

  test('plain DICOM on the TLS port: the connection is closed, the node stays up', async () => {
    const socket = net.connect(tlsPort(node), '127.0.0.1');
    const rq = encodeAssociateRq(associateRq({ callingAe: 'PLAIN' }));
    const got: Buffer[] = [];
    const started = Date.now();
    const closed = new Promise<void>((resolve) => {
      socket.on('data', (d: Buffer) => got.push(d));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve());
    });
    socket.write(rq);
    await closed;
    assert.ok(Date.now() - started < 5000, 'closed promptly');
    const answer = Buffer.concat(got);
    assert.ok(answer.length === 0 || answer[0] !== 0x02, 'no A-ASSOCIATE-AC over plain TCP');
    const peer = { aeTitle: 'SCANNODE', host: '127.0.0.1', port: tlsPort(node) };
    await echo({ ...peer, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } }, 'SCU', 10_000);
  });
});

describe('TLS only: the plain port off (dicom.port null)', () => {
  test('only the TLS port listens; echoscu +tls without a client certificate works when none is required', async (t) => {
    if (!needPeer(t, 'echoscu')) return;
    const node = await startTestNode({
      dicom: { port: null, tls: { port: 0, cert: certs.serverCert, key: certs.serverKey } },
    });
    try {
      assert.equal(node.node.dicom.address().port, tlsPort(node), 'the TLS listener is the only one');
      const e = await run('echoscu', ['-aec', 'SCANNODE', '+tla', '+cf', certs.ca, '127.0.0.1', String(tlsPort(node))]);
      assert.equal(e.code, 0, e.stderr);
    } finally {
      await node.destroy();
    }
  });
});

describe("scannode's C-FIND towards a TLS scanner (Orthanc with DicomTlsEnabled)", () => {
  let scanner: OrthancPeer | undefined;
  let studyUid = '';
  before(async () => {
    if (!fs.existsSync('/usr/sbin/Orthanc') && !fs.existsSync('/usr/bin/Orthanc')) return;
    const study = generateStudy({ dir: path.join(tmp, 'qr'), series: 1, perSeries: 2, accessionNumber: 'TLSACC1' });
    studyUid = study[0]!.studyInstanceUid;
    scanner = await startOrthanc({
      aeTitle: 'TLSQR',
      modalities: [{ aeTitle: 'SCANNODE', port: 104 }],
      extra: {
        DicomTlsEnabled: true,
        DicomTlsCertificate: certs.serverCert,
        DicomTlsPrivateKey: certs.serverKey,
        DicomTlsTrustedCertificates: certs.ca,
        DicomTlsRemoteCertificateRequired: true,
      },
    });
    await scanner.upload(study.map((i) => i.file));
  });
  after(async () => scanner?.destroy());

  test('C-FIND over TLS with our client certificate finds the study; plain DICOM does not get through', async (t) => {
    if (!needPeer(t, 'Orthanc')) return;
    const peer = { aeTitle: 'TLSQR', host: '127.0.0.1', port: scanner!.port };
    const found = await cFind(
      { ...peer, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } },
      'SCANNODE',
      'STUDY',
      { StudyInstanceUID: studyUid },
      { timeoutMs: 20_000 },
    );
    assert.equal(found.length, 1);
    assert.equal(found[0]!.AccessionNumber, 'TLSACC1');
    await assert.rejects(cFind(peer, 'SCANNODE', 'STUDY', { StudyInstanceUID: studyUid }, { timeoutMs: 5_000 }));
  });
});
