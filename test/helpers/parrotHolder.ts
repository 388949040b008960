/**
 * A peer process for the half-open scenario: `node parrotHolder.js <port> <n>` opens n associations, starts a C-STORE
 * on each (command and the first data fragment), prints READY and then does nothing. The test SIGSTOPs it: a peer gone
 * without FIN (its kernel still acknowledges, so only the node's idle timer can reclaim the slots).
 */
import { fileURLToPath } from 'node:url';
import { ParrotSession } from './parrotSession.js';
import { storeExchange } from './parrotExchange.js';
import { fixedUid } from './parrotDimse.js';

/** Stores of SOP Instance UIDs fixedUid(700 000 + i), i < n, started and never finished. */
export async function holdAssociations(port: number, n: number, firstUid = 700_000): Promise<ParrotSession[]> {
  const sessions: ParrotSession[] = [];
  for (let i = 0; i < n; i++) {
    const s = await ParrotSession.connect(port);
    const ex = storeExchange(fixedUid(firstUid + i));
    s.send(ex.rq);
    const ac = await s.until((e) => e.kind === 'AC', 15_000);
    if (ac.kind !== 'AC') throw new Error(`association ${i} not accepted: ${ac.kind}`);
    s.send(ex.command);
    s.send(ex.data[0]!);
    sessions.push(s);
  }
  return sessions;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [port, n] = process.argv.slice(2).map(Number);
  holdAssociations(port!, n!).then(
    () => {
      process.stdout.write('READY\n');
      setInterval(() => undefined, 1 << 30);
    },
    (err: unknown) => {
      process.stdout.write(`FAILED ${String(err)}\n`);
      process.exit(1);
    },
  );
}
