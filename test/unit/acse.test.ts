import assert from 'node:assert/strict';
import { test } from 'node:test';
import { negotiate, type AcceptorIdentity } from '../../src/dimse/acse.js';
import {
  decodeAssociateAc,
  decodeAssociateRq,
  encodeAssociateAc,
  encodeAssociateRq,
  type AssociateRq,
} from '../../src/dimse/associatePdu.js';
import { PduError } from '../../src/dimse/pdu.js';
import { rejectionCodes } from '../../src/dimse/rejectTable.js';
import { associateRq } from '../helpers/associateRq.js';

const me: AcceptorIdentity = {
  aeTitle: 'SCANNODE',
  allowedCallingAeTitles: [],
  maxAssociations: 2,
  maxPduLength: 131072,
  implementationClassUid: '1.2.826.0.1.3680043.10.1561.1',
  implementationVersionName: 'SCANNODE_010',
};
const MR = '1.2.840.10008.5.1.4.1.1.4';
const IMPLICIT = '1.2.840.10008.1.2';
const EXPLICIT = '1.2.840.10008.1.2.1';
const syntaxes = (a: string) => (a === MR || a === '1.2.840.10008.1.1' ? [IMPLICIT, EXPLICIT] : undefined);

function request(over: Partial<AssociateRq> = {}): AssociateRq {
  return {
    ...associateRq({
      calledAe: 'SCANNODE        ',
      callingAe: 'MRC40123        ',
      presentationContexts: [
        { id: 1, abstractSyntax: MR, transferSyntaxes: ['1.2.840.10008.1.2.4.90', EXPLICIT, IMPLICIT] },
        { id: 3, abstractSyntax: '1.2.840.10008.5.1.4.1.2.2.1', transferSyntaxes: [IMPLICIT] },
        { id: 5, abstractSyntax: MR, transferSyntaxes: ['1.2.840.10008.1.2.4.50'] },
      ],
    }),
    ...over,
  };
}

const kindOf = (rq: AssociateRq, active = 0) => {
  const n = negotiate(rq, me, active, syntaxes);
  return n.ok ? 'accepted' : n.rejection.kind;
};

test('a good request: the sender-ordered syntax we take, abstract and transfer syntax rejections per context', () => {
  const n = negotiate(request(), me, 0, syntaxes);
  assert.ok(n.ok);
  assert.deepEqual(
    n.ac.presentationContexts.map((pc) => [pc.id, pc.result, pc.transferSyntax]),
    [
      [1, 0, EXPLICIT],
      [3, 3, IMPLICIT],
      [5, 4, '1.2.840.10008.1.2.4.50'],
    ],
  );
  assert.equal(n.ac.userInfo?.maxLength, 131072);
  assert.deepEqual([...n.contexts.keys()], [1]);
  // The AC round-trips through the codec.
  const back = decodeAssociateAc(encodeAssociateAc(n.ac).subarray(6));
  assert.deepEqual(back.presentationContexts, n.ac.presentationContexts);
});

test('every check of the request has its typed rejection and PS3.8 codes', () => {
  const pcs = request().presentationContexts;
  const cases: Array<[string, AssociateRq, string]> = [
    ['protocol version without bit 0', request({ protocolVersion: 2 }), 'protocol-version-not-supported'],
    ['called AE with a control character', request({ calledAe: 'SCAN\x01NODE' }), 'called-ae-not-recognized'],
    ['calling AE all spaces', request({ callingAe: ' '.repeat(16) }), 'calling-ae-not-recognized'],
    ['calling AE with a backslash', request({ callingAe: 'A\\B' }), 'calling-ae-not-recognized'],
    ['another called AE', request({ calledAe: 'OTHER' }), 'called-ae-not-recognized'],
    ['unknown application context', request({ applicationContext: '1.2.3' }), 'application-context-not-supported'],
    ['no presentation context', request({ presentationContexts: [] }), 'invalid-request'],
    ['an even context ID', request({ presentationContexts: [{ ...pcs[0]!, id: 2 }] }), 'invalid-request'],
    ['a duplicate context ID', request({ presentationContexts: [pcs[0]!, pcs[0]!] }), 'invalid-request'],
    [
      'a context without transfer syntax',
      request({ presentationContexts: [{ ...pcs[0]!, transferSyntaxes: [] }] }),
      'invalid-request',
    ],
    [
      'a context without abstract syntax',
      request({ presentationContexts: [{ ...pcs[0]!, abstractSyntax: undefined }] }),
      'invalid-request',
    ],
    [
      '129 contexts',
      request({ presentationContexts: Array.from({ length: 129 }, (_, i) => ({ ...pcs[0]!, id: 2 * i + 1 })) }),
      'invalid-request',
    ],
    ['no User Information', request({ userInfo: undefined }), 'invalid-request'],
    ['no Maximum Length', request({ userInfo: { ...request().userInfo!, maxLength: undefined } }), 'invalid-request'],
  ];
  for (const [what, rq, kind] of cases) assert.equal(kindOf(rq), kind, what);
  assert.equal(kindOf(request(), 2), 'local-limit-exceeded');
  assert.deepEqual(rejectionCodes({ kind: 'local-limit-exceeded' }), { result: 2, source: 3, reason: 2 });
  assert.deepEqual(rejectionCodes({ kind: 'protocol-version-not-supported' }), { result: 1, source: 2, reason: 2 });
  assert.deepEqual(rejectionCodes({ kind: 'called-ae-not-recognized' }), { result: 1, source: 1, reason: 7 });
  assert.deepEqual(rejectionCodes({ kind: 'calling-ae-not-recognized' }), { result: 1, source: 1, reason: 3 });
  assert.deepEqual(rejectionCodes({ kind: 'application-context-not-supported' }), { result: 1, source: 1, reason: 2 });
  assert.deepEqual(rejectionCodes({ kind: 'invalid-request' }), { result: 1, source: 1, reason: 1 });
});

test('the codec: a request round-trips; items overrunning their container cannot be parsed', () => {
  const rq = request();
  const bytes = encodeAssociateRq(rq);
  const back = decodeAssociateRq(bytes.subarray(6));
  assert.deepEqual(back.presentationContexts, rq.presentationContexts);
  assert.equal(back.userInfo?.maxLength, 16384);
  const overrun = Buffer.from(bytes.subarray(6));
  overrun.writeUInt16BE(0xffff, 70); // the application context item claims 65535 bytes
  assert.throws(
    () => decodeAssociateRq(overrun),
    (e: unknown) => e instanceof PduError && /runs past the end/.test(e.message),
  );
  assert.throws(() => decodeAssociateRq(Buffer.alloc(40)), /shorter than its fixed fields/);
  const twoMax = Buffer.concat([bytes.subarray(6), Buffer.from([0x50, 0, 0, 8, 0x51, 0, 0, 4, 0, 0, 0x40, 0])]);
  assert.throws(() => decodeAssociateRq(twoMax), /a second User Information item/);
});
