// Package txloop is the Go client of the txloop sidecar: `txloop sidecar` runs one txloop
// service beside a service written in any language and talks to it over localhost HTTP
// (api/openapi.yaml in the txloop repository is the contract this package follows).
//
// It has three parts, all on the standard library only:
//
//   - [Client]: the initiator's calls (Begin, Commit, Rollback, Get, List, WaitForCompletion,
//     Saga, PrepareMessage, SubmitMessage, DiscardMessage, Deliveries), the participant's own
//     calls (Register, Report, Try) and the REST-TCC coordinator (ConfirmParticipants,
//     CancelParticipants). Every call takes a [context.Context]; its deadline or cancellation
//     ends the HTTP request.
//   - [Client.Participant]: net/http middleware around a service's Try handler. It reads the
//     txloop-xid and txloop-deadline headers, registers the branch with the sidecar, runs the
//     handler with the branch in its context ([TryFromContext]) and reports the outcome.
//   - [CallbackHandler] and [CheckBackHandler]: the http.Handlers the sidecar calls back for
//     phase 2 (confirm, cancel, a saga step's action and compensation, a message's delivery)
//     and for a prepared message's check-back.
//
// # Errors
//
// Every error the sidecar answers is an RFC 9457 problem document; the client returns it as a
// *[Problem] whose Name is the txloop SDK error's stable name ([ErrTransactionNotFound],
// [ErrTransactionAlreadyDecided], [ErrBranchRegistrationRefused], …) with that error's fields
// (Xid, BranchID, Outcome, TransactionStatus, DecidedBy, Field, …). The names are of type
// [ErrorName], which is itself an error so that errors.Is matches a problem by name:
//
//	if errors.Is(err, txloop.ErrTransactionAlreadyDecided) { … }
//	var p *txloop.Problem
//	if errors.As(err, &p) && p.Name == txloop.ErrTransactionAlreadyDecided { use(p.Outcome) }
//
// An answer that is not a problem document (a proxy's 502, say) is a *Problem too, with the HTTP
// status, an empty Name and the start of the body as Detail. A request that got no answer returns
// the transport's error, wrapped, so errors.Is(err, context.DeadlineExceeded) still works.
//
// # Callbacks
//
// A callback handler's return decides the attempt: nil answers 204 (done); an error marked with
// [NonRetryable] answers 409 (refused for good: a saga action fails its saga, anything else is
// parked for a human at once); an error that wraps [ErrGone] answers 410 (nothing left to do,
// counted as done); any other error answers 500 with its message, and the sidecar retries with the
// branch's backoff. Phase 2 is at least once: make each handler idempotent by
// [Callback.IdempotencyKey] and make its write conditional on ([Callback.FencingToken],
// [Callback.Attempt]).
package txloop
