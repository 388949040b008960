// The Docker image and docker/compose.yml (issue 16), run by .ci/run with the host install (npm run test:install):
// the image built from the Debian package on a base made from Debian packages (the cached debootstrap root, imported),
// then the compose file's cluster started on the host network: two scannode nodes, PostgreSQL and haproxy (these two
// from Debian's packages too, test/docker/). A study goes through haproxy; both nodes are healthy, every acknowledged
// image is indexed once and byte-identical in its node's spool; a node killed with -9 comes back at once.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { REPO, cachedDebianRoot, debUnderTest, needTools } from '../helpers/debroot.js';
import { baseImage, buildImage, docker, dockerEnv, must, startDockerd } from '../helpers/docker.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';
import { CI, freePort, storeAll } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-docker-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;
const PASSWORD = `ci-${process.pid}-${Date.now()}`;

describe('the Docker image and the compose file', () => {
  test('two nodes, PostgreSQL and haproxy on the host network: a study through haproxy, stored once', async (t) => {
    if (process.getuid?.() !== 0) {
      const reason = 'the Docker test needs root (dockerd)';
      if (CI) throw new Error(reason);
      return t.skip(reason);
    }
    if (!needTools(t, 'the Docker test needs', 'dockerd', 'docker', 'docker-compose', 'storescu', 'tar')) return;
    const root = await cachedDebianRoot(t);
    if (!root) return;
    const { deb, failure } = await debUnderTest(path.join(tmp, 'out'));
    if (!deb) throw new Error(`no package to build the image from: ${failure}`);
    const daemon = await startDockerd(t);
    if (!daemon) return;
    // Undone last-in first-out, the daemon last: the containers and volumes go before it stops.
    const cleanup: Array<() => Promise<unknown>> = [() => daemon.stop()];
    t.after(async () => {
      for (const step of cleanup.reverse()) await step().catch((err) => t.diagnostic(`clean-up: ${String(err)}`));
    });

    // The images: the base (imported once per Debian root), PostgreSQL + haproxy (cached layers), and scannode's.
    let since = Date.now();
    const base = await baseImage(root);
    t.diagnostic(`base image ${base.tag}: ${base.imported ? `imported in ${seconds(since)}` : 'cached'}`);
    since = Date.now();
    const services = `scannode-ci-services:${base.tag.split(':')[1]}`;
    await buildImage(
      path.join(REPO, 'test/docker'),
      path.join(REPO, 'test/docker/services.Dockerfile'),
      services,
      base.tag,
    );
    t.diagnostic(`PostgreSQL + haproxy image: ${seconds(since)}`);
    // The build context as `npm run package` leaves it: dist/package/ with the one .deb.
    const context = path.join(tmp, 'context');
    fs.mkdirSync(path.join(context, 'dist/package'), { recursive: true });
    fs.copyFileSync(deb, path.join(context, 'dist/package', path.basename(deb)));
    const image = `scannode:ci-${process.pid}`;
    cleanup.push(() => docker('docker', ['rmi', '-f', image]));
    since = Date.now();
    await buildImage(context, path.join(REPO, 'docker/Dockerfile'), image, base.tag);
    t.diagnostic(`scannode image (from the .deb): ${seconds(since)}`);

    // The compose file as a site runs it, with ports of this run and everything on 127.0.0.1.
    const ports = {
      DICOM_PORT: await freePort(),
      HTTP_PORT: await freePort(),
      NODE1_DICOM_PORT: await freePort(),
      NODE1_HTTP_PORT: await freePort(),
      NODE2_DICOM_PORT: await freePort(),
      NODE2_HTTP_PORT: await freePort(),
      POSTGRES_PORT: await freePort(),
    };
    const env = dockerEnv({
      ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
      POSTGRES_PASSWORD: PASSWORD,
      POSTGRES_IMAGE: services,
      HAPROXY_IMAGE: services,
      SCANNODE_IMAGE: image,
      SCANNODE_SCANNER_HOST: '127.0.0.1',
      DICOM_ADDRESS: '127.0.0.1',
      HTTP_ADDRESS: '127.0.0.1',
    });
    const project = `scannode-ci-${process.pid}`;
    const compose = (args: string[], timeoutMs = 3 * 60_000) =>
      must('docker-compose', ['-p', project, '-f', path.join(REPO, 'docker/compose.yml'), ...args], {
        env,
        timeoutMs,
      });
    cleanup.push(() => compose(['down', '-v', '--remove-orphans']));
    since = Date.now();
    await compose(['up', '-d', '--no-build']);
    const container = async (service: string) => (await compose(['ps', '-q', service])).trim();
    const health = async (service: string) =>
      (await must('docker', ['inspect', '-f', '{{.State.Health.Status}}', await container(service)], { env })).trim();
    for (const service of ['scannode-1', 'scannode-2']) {
      await waitFor(`${service} healthy`, async () => (await health(service)) === 'healthy', 120_000);
    }
    t.diagnostic(`compose up: both nodes healthy ${seconds(since)} after the start`);

    // A study of 3 series through haproxy, one association per series: round robin spreads them over both nodes.
    const study = generateStudy({ dir: path.join(tmp, 'study'), series: 3, perSeries: 4 });
    const bySeries = new Map<string, typeof study>();
    for (const s of study) bySeries.set(s.seriesInstanceUid, [...(bySeries.get(s.seriesInstanceUid) ?? []), s]);
    await waitFor(
      'haproxy answers',
      async () => {
        try {
          await storeAll({ port: ports.DICOM_PORT }, [...bySeries.values()][0]!);
          return true;
        } catch {
          return false;
        }
      },
      30_000,
    );
    for (const files of [...bySeries.values()].slice(1)) await storeAll({ port: ports.DICOM_PORT }, files);

    const db = new pg.Client({
      host: '127.0.0.1',
      port: ports.POSTGRES_PORT,
      user: 'scannode',
      password: PASSWORD,
      database: 'scannode',
    });
    await db.connect();
    cleanup.push(() => db.end());
    const studyUid = study[0]!.studyInstanceUid;
    const indexed = async () =>
      (
        await db.query<{ sop: string }>('select sop_instance_uid as sop from instances where study_instance_uid = $1', [
          studyUid,
        ])
      ).rows.map((r) => r.sop);
    await waitFor('every acknowledged image indexed', async () => (await indexed()).length === study.length, 30_000);
    assert.deepEqual((await indexed()).sort(), study.map((s) => s.sopInstanceUid).sort(), 'each image once');

    // Each node's spool, copied out of the shared volume: every image byte-identical, and both nodes received some.
    const spools = path.join(tmp, 'spools');
    await must('docker', ['cp', `${await container('scannode-1')}:/data/incoming/nodes`, spools], { env });
    const perNode = new Map<string, number>();
    const bytes = new Map<string, Buffer>();
    for (const f of listFiles(spools).filter((f) => f.endsWith('.dcm'))) {
      const node = path.relative(spools, f).split(path.sep)[0]!;
      perNode.set(node, (perNode.get(node) ?? 0) + 1);
      bytes.set(path.basename(f, '.dcm'), datasetBytes(f));
    }
    for (const s of study) assert.ok(bytes.get(s.sopInstanceUid)?.equals(datasetBytes(s.file)), s.sopInstanceUid);
    assert.deepEqual(
      [...perNode.keys()].sort(),
      ['scannode-1', 'scannode-2'],
      `spools: ${JSON.stringify([...perNode])}`,
    );

    // The cluster as the status API tells it, through haproxy: both nodes alive, one runs the scheduler.
    const nodes = async () => {
      const r = await fetch(`http://127.0.0.1:${ports.HTTP_PORT}/api/nodes`);
      return ((await r.json()) as { nodes: Array<{ id: string; state: string; scheduler: boolean }> }).nodes;
    };
    const view = await nodes();
    assert.deepEqual(
      view.map((n) => [n.id, n.state]),
      [
        ['scannode-1', 'alive'],
        ['scannode-2', 'alive'],
      ],
    );
    assert.equal(view.filter((n) => n.scheduler).length, 1);
    for (const service of ['scannode-1', 'scannode-2']) assert.equal(await health(service), 'healthy', service);

    // kill -9 of a node's container: restarted, it is not refused by its own row (its earlier incarnation, in another
    // PID namespace) and is healthy again well within the lease (30 s).
    await compose(['kill', '-s', 'SIGKILL', 'scannode-2']);
    since = Date.now();
    await compose(['start', 'scannode-2']);
    await waitFor('scannode-2 healthy again', async () => (await health('scannode-2')) === 'healthy', 120_000);
    t.diagnostic(`scannode-2 after kill -9: healthy again ${seconds(since)} after its start`);
    assert.equal((await indexed()).length, study.length, 'nothing lost or doubled by the kill');

    // docker stop: SIGTERM through the init, a clean stop (exit 0) well within stop_grace_period; the node says so.
    await compose(['stop', 'scannode-2'], 60_000);
    const exit = await must('docker', ['inspect', '-f', '{{.State.ExitCode}}', await container('scannode-2')], { env });
    assert.equal(exit.trim(), '0', 'a clean stop');
    await waitFor(
      'scannode-2 stopped in the registry',
      async () => (await nodes()).some((n) => n.id === 'scannode-2' && n.state === 'stopped'),
      15_000,
    );
  });
});
