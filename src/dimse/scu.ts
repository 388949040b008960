/**
 * Query/retrieve SCU: promise-based C-FIND and C-MOVE (Study Root) over dcmjs-dimse's `Client`, with typed errors and
 * an overall deadline per operation. Protocol only: no database or file layout here.
 *
 * This file is the module's public face; the parts are scuAssociation.ts (peer, deadline, one association and its
 * typed errors), scuFind.ts and scuMove.ts (one service each) and scuAnswers.ts (statuses and reading responses).
 *
 * What the library does not do and this module does:
 * - a promise API with one association per call, resolved only once the association is closed;
 * - A-ASSOCIATE-RJ, A-ABORT and "closed without a final response" told apart (the library's Client surfaces only
 *   `associationRejected`, `networkError` and `closed`; the A-ABORT event stays on its Network object);
 * - an overall deadline (its own timeouts are per connection / per PDU: a peer that keeps answering Pending would
 *   never trip them), enforced with a timer that aborts the association;
 * - 0xFF01 (Pending, optional keys not supported) kept as Pending: the library treats every status but 0xFF00 as
 *   final and would release the association after the first match;
 * - TCP_NODELAY on the socket (the library never sets it: ~40 ms stalls per response with a delayed-ACK peer).
 */
export {
  ScuAbortedError,
  ScuConnectError,
  ScuError,
  ScuRejectedError,
  ScuStatusError,
  ScuTimeoutError,
  type QueryLevel,
  type ScuOptions,
  type ScuPeer,
} from './scuAssociation.js';
export { cFind } from './scuFind.js';
export { cMove, MOVE_UIDS_PER_REQUEST, type MoveIds, type MoveOptions, type MoveResult } from './scuMove.js';
