/**
 * The valid exchanges the raw-socket cases start from: an association with MR storage and verification contexts, a
 * C-STORE of a small generated image (its data set cut into three P-DATA-TF PDUs at points inside the pixel data, so
 * that losing any fragment truncates the Pixel Data value), a C-ECHO, a release. Cases break one piece of these.
 */
import { associateRq, fragments, MCH, pdata, pdv, releaseRq, STORE_CONTEXTS, type RqSpec } from './parrot.js';
import { echoRq, smallImage, storeRq, type SmallImage } from './parrotDimse.js';
import type { Script } from './parrotRun.js';

export interface StoreExchange {
  uid: string;
  image: SmallImage;
  rq: Buffer;
  /** The C-STORE-RQ command set in one P-DATA-TF (PC 1, command + last). */
  command: Buffer;
  commandSet: Buffer;
  /** The data set in three P-DATA-TF PDUs (PC 1): fragment, fragment, last fragment. */
  data: Buffer[];
  release: Buffer;
}

export function storeExchange(uid: string, rq: RqSpec = {}): StoreExchange {
  const image = smallImage(uid);
  const cuts = [image.pixelStart + 512, image.pixelStart + 1280];
  const ds = image.dataset;
  const pieces = [ds.subarray(0, cuts[0]), ds.subarray(cuts[0], cuts[1]), ds.subarray(cuts[1])];
  const commandSet = storeRq({ sopInstance: uid });
  return {
    uid,
    image,
    rq: associateRq({ calling: 'MUTSCU', contexts: STORE_CONTEXTS, ...rq }),
    command: pdata([pdv(1, MCH.COMMAND_LAST, commandSet)]),
    commandSet,
    data: pieces.map((p, i) => pdata([pdv(1, i === pieces.length - 1 ? MCH.DATA_LAST : MCH.DATA, p)])),
    release: releaseRq(),
  };
}

/** The data set of `ex` as PDUs of one PDV, the last flag on the last one. */
export function dataPdus(pcId: number, data: Buffer, chunk = 16000): Buffer[] {
  return fragments(pcId, false, data, chunk);
}

/** Associates with the default contexts (or `rq`), and stops the script unless accepted. */
export async function associate(sc: Script, rq: RqSpec = {}): Promise<void> {
  sc.s.send(associateRq({ contexts: STORE_CONTEXTS, ...rq }));
  await sc.ac();
}

/** A C-ECHO on the verification context (PC 3 by default) and its status. */
export async function echoOn(sc: Script, pcId = 3): Promise<number | undefined> {
  for (const p of fragments(pcId, true, echoRq(5))) sc.s.send(p);
  return sc.status();
}

/** Release and wait for the answer (the runner judges it). */
export function release(sc: Script): void {
  sc.s.send(releaseRq());
}

/** The whole valid store: associate, command, data, status, release. */
export async function validStore(sc: Script, ex: StoreExchange): Promise<void> {
  sc.s.send(ex.rq);
  await sc.ac();
  sc.s.send(ex.command);
  for (const d of ex.data) sc.s.send(d);
  await sc.status();
  release(sc);
}
