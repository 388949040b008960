import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { openDatabase } from '../../src/db/dataSource.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logging/logger.js';
import { isSchedulerPaused, SCHEDULER_PAUSED_KEY } from '../../src/scheduler/pauseFlag.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { DB_KINDS, dropSchema, needDb, newSchema, PG_URL } from '../helpers/db.js';
import { run } from '../helpers/peers.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-scheduler-cli-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('scannode scheduler pause | resume | status', () => {
  for (const kind of DB_KINDS) {
    test(`sets the flag in the ${kind} database that a running node reads`, async (t) => {
      if (!(await needDb(t, kind))) return;
      const schema = newSchema();
      const dataDir = path.join(tmp, kind);
      const database = kind === 'sqlite' ? { type: 'sqlite' } : { type: 'postgres', url: PG_URL, schema };
      const config = path.join(tmp, `${kind}-config.json`);
      fs.writeFileSync(config, JSON.stringify({ dataDir, database, log: { level: 'warn' } }));
      const cli = (cmd: string) => run(process.execPath, [CLI, 'scheduler', cmd, '--config', config]);
      const loaded = loadConfig(config);
      // The running node's side: one long-lived connection and a scheduler whose ticks the test fires.
      const db = await openDatabase(loaded.config.database, loaded.dataDir);
      let tick: () => void = () => assert.fail('not scheduled');
      let runs = 0;
      let reads = 0;
      const scheduler = new Scheduler({
        cron: loaded.config.scheduler.cron,
        enabled: true,
        log: createLogger({ level: 'error', silent: true }),
        job: () => Promise.resolve(void runs++),
        isPaused: async () => {
          const paused = await isSchedulerPaused(db);
          reads++;
          return paused;
        },
        schedule: (_expr, fn) => ((tick = fn), { stop: () => undefined }),
      });
      scheduler.start();
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      const tickAndWait = async () => {
        const before = reads;
        tick();
        while (reads === before) await sleep(5);
        await sleep(5);
        while (scheduler.state.running) await sleep(5);
      };
      const stored = async () => {
        const table = kind === 'postgres' ? `"${schema}".settings` : 'settings';
        const rows = (await db.source.query(
          `SELECT value FROM ${table} WHERE key = '${SCHEDULER_PAUSED_KEY}'`,
        )) as Array<{
          value: string;
        }>;
        return rows[0]?.value;
      };
      try {
        const fresh = await cli('status');
        assert.equal(fresh.code, 0, fresh.stderr);
        assert.match(fresh.stdout, /^paused: +no$/m);
        assert.match(fresh.stdout, /never paused/);
        assert.equal(await stored(), undefined);
        assert.equal(await isSchedulerPaused(db), false);

        const paused = await cli('pause');
        assert.equal(paused.code, 0, paused.stderr);
        assert.equal(await stored(), 'true');
        assert.equal(await isSchedulerPaused(db), true);
        const status = await cli('status');
        assert.match(status.stdout, /^paused: +yes$/m);
        assert.match(status.stdout, /cli: +paused \d{4}-/);
        assert.equal((await cli('pause')).code, 0, 'pausing twice is fine');
        assert.equal(await isSchedulerPaused(db), true);
        await tickAndWait();
        assert.equal(runs, 0, 'the running scheduler skips its tick while paused');
        assert.equal(scheduler.state.paused, true);

        const resumed = await cli('resume');
        assert.equal(resumed.code, 0, resumed.stderr);
        assert.equal(await stored(), 'false');
        assert.equal(await isSchedulerPaused(db), false);
        assert.match((await cli('status')).stdout, /^paused: +no$/m);
        await tickAndWait();
        assert.equal(runs, 1, 'and runs again after resume, without a restart');
      } finally {
        await scheduler.stop();
        await db.close();
        if (kind === 'postgres') await dropSchema(schema);
      }
    });
  }

  test('status counts scheduler.enabled=false as paused and resume says so', async () => {
    const config = path.join(tmp, 'disabled-config.json');
    fs.writeFileSync(config, JSON.stringify({ dataDir: path.join(tmp, 'disabled'), scheduler: { enabled: false } }));
    const status = await run(process.execPath, [CLI, 'scheduler', 'status', '--config', config]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^paused: +yes$/m);
    assert.match(status.stdout, /scheduler\.enabled=false/);
    const resumed = await run(process.execPath, [CLI, 'scheduler', 'resume', '--config', config]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /scheduler\.enabled is false/);
  });

  test('exit 2 for an unknown subcommand or a bad config, 1 when the database cannot be opened', async () => {
    const unknown = await run(process.execPath, [CLI, 'scheduler', 'stop']);
    assert.equal(unknown.code, 2);
    const bad = path.join(tmp, 'bad-config.json');
    fs.writeFileSync(bad, JSON.stringify({ scheduler: { enabeld: true } }));
    const invalid = await run(process.execPath, [CLI, 'scheduler', 'status', '--config', bad]);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /enabeld/);
    const unreachable = path.join(tmp, 'unreachable-config.json');
    fs.writeFileSync(
      unreachable,
      JSON.stringify({
        dataDir: path.join(tmp, 'unreachable'),
        database: { type: 'postgres', url: 'postgres://nobody@127.0.0.1:1/none' },
      }),
    );
    const down = await run(process.execPath, [CLI, 'scheduler', 'pause', '--config', unreachable]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot open the database/);
  });
});
