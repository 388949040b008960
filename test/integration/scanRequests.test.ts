import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test, before, after } from 'node:test';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { run, needNode } from '../helpers/peers.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { newUid } from '../helpers/dicomgen.js';
import { createDataset, nCreate } from '../helpers/mppsClient.js';
import { waitFor } from '../helpers/waitFor.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-requests-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

for (const kind of DB_KINDS) {
  describe(`scan request files on ${kind}`, () => {
    let node: TestNode;
    const active = (name: string) => path.join(node.dataDir, 'active-scans', name);
    const scanRow = async (where: Record<string, unknown>) => {
      const db = node.node.db;
      return db.source.getRepository(db.entities.Scan).findOne({ where });
    };

    before(async () => {
      if (!(await needDb({ skip: (why) => console.log(`# skipped: ${why}`) }, kind))) return;
      node = await startTestNode({ kind });
    });
    after(async () => node?.destroy());

    test('a JSON file naming a study becomes a request under <StudyInstanceUID>.json', async (t) => {
      if (!needNode(t, node)) return;
      const study = newUid();
      fs.writeFileSync(active('from-ris.json'), JSON.stringify({ studyInstanceUID: study }));
      await waitFor('the canonical request file', () => fs.existsSync(active(`${study}.json`)));
      const row = await waitFor('the request row', () => scanRow({ studyInstanceUid: study }));
      assert.equal(row.state, 'active');
      assert.equal(row.source, 'file');
      assert.ok(!fs.existsSync(active('from-ris.json')), 'the dropped file is replaced by the canonical one');
      const content = JSON.parse(fs.readFileSync(active(`${study}.json`), 'utf8')) as Record<string, unknown>;
      assert.equal(content.studyInstanceUID, study);
      assert.equal(content.state, 'active');
    });

    test('a JSON file naming only an accession number stays unresolved (for the scheduler)', async (t) => {
      if (!needNode(t, node)) return;
      fs.writeFileSync(active('accession-A42.json'), JSON.stringify({ accessionNumber: 'A42' }));
      const row = await waitFor('the request row', () => scanRow({ accessionNumber: 'A42' }));
      assert.equal(row.state, 'active');
      assert.equal(row.studyInstanceUid, null);
      assert.ok(fs.existsSync(active('accession-A42.json')));
    });

    test('an empty file named by a StudyInstanceUID (FIONA style) is a request', async (t) => {
      if (!needNode(t, node)) return;
      const study = newUid();
      fs.writeFileSync(active(study), '');
      await waitFor('the canonical request file', () => fs.existsSync(active(`${study}.json`)));
      const row = await waitFor('the request row', () => scanRow({ studyInstanceUid: study }));
      assert.equal(row.state, 'active');
      assert.ok(!fs.existsSync(active(study)));
    });

    test('garbage goes to problem/ with a reason, and the node carries on', async (t) => {
      if (!needNode(t, node)) return;
      fs.writeFileSync(active('garbage.json'), '{ not json');
      fs.writeFileSync(active('not-a-uid'), '');
      fs.writeFileSync(active('bad-uid.json'), JSON.stringify({ studyInstanceUID: '1.2.03.x' }));
      const problem = path.join(node.dataDir, 'problem');
      for (const name of ['garbage.json', 'not-a-uid', 'bad-uid.json']) {
        await waitFor(`${name} in problem/`, () => fs.existsSync(path.join(problem, `${name}.reason.txt`)));
        assert.ok(fs.existsSync(path.join(problem, name)));
        assert.ok(!fs.existsSync(active(name)));
      }
      assert.match(fs.readFileSync(path.join(problem, 'garbage.json.reason.txt'), 'utf8'), /not valid JSON/);
      assert.match(fs.readFileSync(path.join(problem, 'bad-uid.json.reason.txt'), 'utf8'), /not a valid UID/);
      const study = newUid();
      assert.equal((await nCreate(node.port, newUid(), createDataset({ studyInstanceUid: study }))).status, 0);
      assert.ok(fs.existsSync(active(`${study}.json`)), 'still answering and writing requests');
    });

    test('a request file removed while the node runs cancels the request', async (t) => {
      if (!needNode(t, node)) return;
      const study = newUid();
      fs.writeFileSync(active(`${study}.json`), JSON.stringify({ studyInstanceUID: study }));
      await waitFor('the request row', () => scanRow({ studyInstanceUid: study, state: 'active' }));
      await waitFor('scannode to rewrite the file', () =>
        fs.readFileSync(active(`${study}.json`), 'utf8').includes('"state"'),
      );
      fs.rmSync(active(`${study}.json`));
      const row = await waitFor('the request to be cancelled', () =>
        scanRow({ studyInstanceUid: study, state: 'cancelled' }),
      );
      assert.match(row.reason ?? '', /removed/);
      assert.ok(!fs.existsSync(active(`${study}.json`)), 'a cancelled request is not written back');
    });

    test('across a restart: a file without a row gets a row, a row without a file gets its file back', async (t) => {
      if (!needNode(t, node)) return;
      const kept = newUid();
      fs.writeFileSync(active(`${kept}.json`), '');
      await waitFor('the request row', () => scanRow({ studyInstanceUid: kept, state: 'active' }));
      await node.stop();
      fs.rmSync(active(`${kept}.json`));
      const dropped = newUid();
      fs.writeFileSync(active(dropped), '');
      await node.restart();
      assert.ok(fs.existsSync(active(`${kept}.json`)), 'file written back at start-up');
      assert.equal((await scanRow({ studyInstanceUid: kept }))?.state, 'active');
      await waitFor('a row for the file dropped while stopped', () => scanRow({ studyInstanceUid: dropped }));
      await waitFor('its canonical file', () => fs.existsSync(active(`${dropped}.json`)));
    });

    test('scannode scan add / list / show', async (t) => {
      if (!needNode(t, node)) return;
      const config = path.join(tmp, `${kind}-config.json`);
      fs.writeFileSync(
        config,
        JSON.stringify({ dataDir: node.dataDir, database: node.node.loaded.config.database, log: { level: 'warn' } }),
      );
      const cli = (...args: string[]) => run(process.execPath, [CLI, 'scan', ...args, '--config', config]);
      const study = newUid();
      const add = await cli('add', study);
      assert.equal(add.code, 0, add.stderr);
      assert.ok(fs.existsSync(active(`${study}.json`)));
      const again = await cli('add', study);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /already requested/);
      const byPatient = await cli('add', '--patient', 'PAT-7', '--date', '20261123');
      assert.equal(byPatient.code, 0, byPatient.stderr);
      assert.ok(fs.existsSync(active('patient-PAT-7-20261123.json')));
      assert.equal((await cli('add', 'not.a.uid')).code, 2);
      assert.equal((await cli('add', '--accession', 'A1', '--date', '20261123')).code, 2);
      assert.equal((await cli('add')).code, 2);
      const list = await cli('list', '--state', 'active');
      assert.equal(list.code, 0, list.stderr);
      assert.ok(list.stdout.includes(study));
      assert.match(list.stdout, /patient PAT-7 20261123/);
      const mpps = newUid();
      await nCreate(node.port, mpps, createDataset({ studyInstanceUid: study }));
      const show = await cli('show', study);
      assert.equal(show.code, 0, show.stderr);
      assert.match(show.stdout, /state: +active/);
      assert.match(show.stdout, /mpps status: +IN PROGRESS/);
      assert.ok(show.stdout.includes(mpps));
      assert.equal((await cli('show', newUid())).code, 1);
    });
  });
}
