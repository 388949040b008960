/**
 * Issue 11's robustness suite on raw sockets: named malformed-peer cases for every category (association request,
 * PDUs before and after the association, P-DATA structure, DIMSE sequencing, command sets, hostile data sets, timers,
 * peers that vanish) and seeded mutations of a valid C-STORE exchange, all against one scannode child process with
 * short ARTIM and idle timers. After each case: the node is alive and a fresh C-ECHO works, the case ended within the
 * timers, a store without Success left no file, nothing PS3.8 says must be refused was accepted. Prints the counts.
 *
 * Replay one mutation: EDGE_SEED=<base seed> EDGE_ONLY=<case number> (both printed on failure). EDGE_MUTATIONS=<n>.
 */
import assert from 'node:assert/strict';
import { describe, test, before, after } from 'node:test';
import { ASSOCIATION_CASES, BEFORE_ASSOCIATION_CASES, TIMER_CASES, type EdgeCase } from '../helpers/parrotCases.js';
import { AFTER_ASSOCIATION_CASES } from '../helpers/parrotCasesData.js';
import { MESSAGE_CASES } from '../helpers/parrotCasesDimse.js';
import { storeExchange } from '../helpers/parrotExchange.js';
import { fixedUid } from '../helpers/parrotDimse.js';
import { basePlan, expectation, mutate, playPlan } from '../helpers/parrotMutate.js';
import { runScript, succeeds, trace, type Observed, type Timers } from '../helpers/parrotRun.js';
import { EdgeSuite } from '../helpers/parrotSuite.js';

/** dicom.artimTimeoutSeconds / idleTimeoutSeconds of the node under test, and the slack before a case is a hang. */
const TIMERS: Timers = { artimMs: 2000, idleMs: 3000, marginMs: 5000 };
const MAX_ASSOCIATIONS = 12;
const NAMED_CONCURRENCY = 4;
const MUTATION_CONCURRENCY = 6;
const BASE_SEED = Number(process.env.EDGE_SEED ?? 1_120_261);
const MUTATIONS = Number(process.env.EDGE_MUTATIONS ?? 300);
const ONLY = process.env.EDGE_ONLY === undefined ? undefined : Number(process.env.EDGE_ONLY);

const suite = new EdgeSuite(TIMERS, { maxAssociations: MAX_ASSOCIATIONS });
let started: Error | undefined;
let uidCounter = 0;

before(async () => {
  try {
    await suite.start();
  } catch (err) {
    started = err as Error;
  }
});
after(async () => {
  console.log(`# ${suite.summary('edge robustness')}`);
  for (const d of suite.deathLog) console.log(`# death during ${d.split('\n')[0]}`);
  await suite.node?.destroy();
});

function needNode(): void {
  if (started) throw new Error(`the node did not start with the new dicom.* keys: ${started.message}`);
}

async function runNamed(c: EdgeCase): Promise<void> {
  needNode();
  const uids: string[] = [];
  const ctx = {
    uid: () => (uids.push(fixedUid(++uidCounter)), uids[uids.length - 1]!),
    maxAssociations: MAX_ASSOCIATIONS,
  };
  let o: Observed | undefined;
  let error: unknown;
  try {
    o = await runScript(c.name, suite.node.port, TIMERS, (sc) => c.script(sc, ctx));
  } catch (err) {
    error = err;
  }
  const verdict = o ? c.check(o) : {};
  // A valid exchange that was refused is its own count, not a wrong answer.
  const refusedGood = c.check === succeeds ? verdict.wrong : undefined;
  const report = await suite.afterCase(
    c.name,
    o,
    uids,
    { ...verdict, wrong: refusedGood ? undefined : verdict.wrong, refusedGood },
    error,
  );
  assert.deepEqual(report.problems, [], `${c.name}\n  node said: ${o ? trace(o) : 'n/a'}`);
}

const ALL: Array<[string, EdgeCase[]]> = [
  ['association request', ASSOCIATION_CASES],
  ['before association', BEFORE_ASSOCIATION_CASES],
  ['timers', TIMER_CASES],
  ['after association', AFTER_ASSOCIATION_CASES],
  ['messages and data sets', MESSAGE_CASES],
];

describe('edge robustness: named malformed-peer cases', { skip: ONLY !== undefined }, () => {
  test('at least 60 named cases cover every category of issue 11', () => {
    const n = ALL.reduce((k, [, cs]) => k + cs.length, 0);
    assert.ok(n >= 60, `${n} named cases`);
    for (const [category, cs] of ALL) assert.ok(cs.length > 0, category);
  });

  // Uses every association slot: alone, before anything else holds one.
  for (const c of ALL.flatMap(([, cs]) => cs).filter((x) => x.exclusive))
    test(`[exclusive] ${c.name}`, () => runNamed(c));

  for (const [category, cases] of ALL) {
    describe(category, { concurrency: NAMED_CONCURRENCY }, () => {
      for (const c of cases.filter((x) => !x.exclusive)) test(c.name, () => runNamed(c));
    });
  }
});

describe(`edge robustness: ${MUTATIONS} seeded mutations of a valid C-STORE exchange (base seed ${BASE_SEED})`, () => {
  const indexes = ONLY !== undefined ? [ONLY] : Array.from({ length: MUTATIONS }, (_, i) => i);

  test('the unmutated exchange is stored (the baseline the mutations start from)', async () => {
    needNode();
    const uid = fixedUid(900_000);
    const ex = storeExchange(uid);
    const clean = await runScript('baseline', suite.node.port, TIMERS, (sc) => playPlan(sc, basePlan(ex)));
    const report = await suite.afterCase('baseline', clean, [uid], { refusedGood: succeeds(clean).wrong });
    assert.deepEqual(report.problems, [], trace(clean));
  });

  describe('mutations', { concurrency: MUTATION_CONCURRENCY }, () => {
    for (const i of indexes) {
      const seed = BASE_SEED + i;
      const uid = fixedUid(100_000 + i);
      const plan = mutate(storeExchange(uid), seed);
      test(`mutation ${i}: ${plan.ops.join(' + ')}`, async () => {
        needNode();
        let o: Observed | undefined;
        let error: unknown;
        try {
          o = await runScript(`mutation ${i}`, suite.node.port, TIMERS, (sc) => playPlan(sc, plan));
        } catch (err) {
          error = err;
        }
        const ac = o?.events.find((e) => e.kind === 'AC');
        const { expect, why } = expectation(plan, ac?.kind === 'AC' ? ac : undefined);
        const verdict: { acceptedBad?: string; refusedGood?: string } = {};
        if (o && expect === 'refuse-assoc' && o.accepted) verdict.acceptedBad = `A-ASSOCIATE-AC, must refuse: ${why}`;
        if (o && expect === 'refuse-store' && o.statuses.includes(0))
          verdict.acceptedBad = `Success, must refuse: ${why}`;
        if (o && expect === 'succeed' && succeeds(o).wrong) verdict.refusedGood = `must succeed (${why})`;
        const report = await suite.afterCase(`mutation ${i}`, o, [uid], verdict, error);
        assert.deepEqual(
          report.problems,
          [],
          `mutation ${i} [${expect}: ${why}] replay: EDGE_SEED=${BASE_SEED} EDGE_ONLY=${i}\n  node said: ${o ? trace(o) : 'n/a'}`,
        );
      });
    }
  });
});

describe('edge robustness: after every case', () => {
  test('nothing but acknowledged instances in incoming/ and the archive', async () => {
    needNode();
    const strays = await suite.strays();
    if (strays.length) suite.counts.writtenDespiteFailure += strays.length;
    assert.deepEqual(strays, [], 'files without a Success (a .part, or a refused instance)');
  });

  test('counts: no deaths, hangs, accepted-bad or written-despite-failure', (t) => {
    t.diagnostic(suite.summary('edge robustness'));
    const { deaths, hangs, acceptedBad, writtenDespiteFailure } = suite.counts;
    assert.deepEqual(
      { deaths, hangs, acceptedBad, writtenDespiteFailure },
      { deaths: 0, hangs: 0, acceptedBad: 0, writtenDespiteFailure: 0 },
    );
  });
});
