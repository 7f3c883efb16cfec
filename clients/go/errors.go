package txloop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// ErrorName is the stable name of a txloop error, as a problem document's "name" carries it.
//
// An ErrorName is an error only so that errors.Is can match a *[Problem] by name:
// errors.Is(err, ErrTransactionNotFound) is true for any *Problem in err's chain named
// TransactionNotFound. This package never returns a bare ErrorName.
type ErrorName string

// Error returns the name, prefixed with "txloop: ".
func (n ErrorName) Error() string { return "txloop: " + string(n) }

// The names of the txloop SDK's errors that the sidecar answers as problem documents, and the
// sidecar's own ones for requests it refuses before any SDK call.
const (
	// ErrValidationError: a request field is invalid (Problem.Field names it); HTTP 422.
	ErrValidationError ErrorName = "ValidationError"
	// ErrPayloadError: a payload is not JSON or too large; a kind of ErrValidationError (errors.Is
	// matches a PayloadError problem with either name); HTTP 422.
	ErrPayloadError ErrorName = "PayloadError"
	// ErrTransactionNotFound: no such transaction (never begun, or collected after its retention); HTTP 404.
	ErrTransactionNotFound ErrorName = "TransactionNotFound"
	// ErrBranchNotFound: no such branch; HTTP 404.
	ErrBranchNotFound ErrorName = "BranchNotFound"
	// ErrUnknownResource: the sidecar's resources file has no such resource; HTTP 422.
	ErrUnknownResource ErrorName = "UnknownResource"
	// ErrTransactionAlreadyDecided: the other outcome won (Problem.Outcome, TransactionStatus,
	// DecidedBy say which and by whom); also a late Try's report after a rollback; HTTP 409.
	ErrTransactionAlreadyDecided ErrorName = "TransactionAlreadyDecided"
	// ErrBranchRegistrationRefused: the transaction is no longer TRYING (anti-hanging: a Try that
	// arrives after the decision must not run), or it is not a TCC transaction; HTTP 409.
	ErrBranchRegistrationRefused ErrorName = "BranchRegistrationRefused"
	// ErrBranchesNotPrepared: commit refused while some Try has not succeeded (Problem.BranchIDs); HTTP 409.
	ErrBranchesNotPrepared ErrorName = "BranchesNotPrepared"
	// ErrDeadlineExceeded: the transaction's own deadline passed (commit is refused after it); HTTP 409.
	ErrDeadlineExceeded ErrorName = "DeadlineExceeded"
	// ErrOperationRefused: an operation the transaction's state does not allow (Problem.Reason); HTTP 409.
	ErrOperationRefused ErrorName = "OperationRefused"
	// ErrWriteConflict: a concurrent change; re-read and retry; HTTP 409.
	ErrWriteConflict ErrorName = "WriteConflict"
	// ErrTryFailed: a Try failed (POST /v1/tries, or a Try handler behind [Client.Participant]); HTTP 424.
	ErrTryFailed ErrorName = "TryFailed"
	// ErrEtcdError: etcd answered an error txloop has no better name for; HTTP 502.
	ErrEtcdError ErrorName = "EtcdError"
	// ErrEtcdUnavailable: etcd could not be reached; a kind of ErrEtcdError; HTTP 503.
	ErrEtcdUnavailable ErrorName = "EtcdUnavailable"
	// ErrServiceClosed: the sidecar is shutting down; HTTP 503.
	ErrServiceClosed ErrorName = "ServiceClosed"
	// ErrLeadershipLost: the sidecar's replica stopped leading mid-operation; HTTP 503.
	ErrLeadershipLost ErrorName = "LeadershipLost"
	// ErrAbortError: the call was aborted; a write may have landed if Problem.MaybeWritten; HTTP 503.
	ErrAbortError ErrorName = "AbortError"
	// ErrNonRetryableError: a handler refused for good.
	ErrNonRetryableError ErrorName = "NonRetryableError"
	// ErrUnauthorized: the bearer token is missing or wrong; HTTP 401.
	ErrUnauthorized ErrorName = "Unauthorized"
	// ErrNotFound: no such route; HTTP 404.
	ErrNotFound ErrorName = "NotFound"
	// ErrBadRequest: the request is not what the route takes (not JSON, say); HTTP 400.
	ErrBadRequest ErrorName = "BadRequest"
	// ErrPayloadTooLarge: the request body is too large; HTTP 413.
	ErrPayloadTooLarge ErrorName = "PayloadTooLarge"
	// ErrUnsupportedMediaType: the request body is not application/json; HTTP 415.
	ErrUnsupportedMediaType ErrorName = "UnsupportedMediaType"
	// ErrInternalError: the sidecar failed (its log says why); HTTP 500.
	ErrInternalError ErrorName = "InternalError"
	// ErrNotReady: GET /readyz while etcd does not answer or the first list is not done; HTTP 503.
	ErrNotReady ErrorName = "NotReady"

	// ErrSidecarUnavailable is this package's own: [Client.Participant] answers it (HTTP 502) when
	// the sidecar could not be reached to register or report a branch. The sidecar never sends it.
	ErrSidecarUnavailable ErrorName = "SidecarUnavailable"
)

// kindOf says which names are kinds of another (the SDK's subclasses).
var kindOf = map[ErrorName]ErrorName{
	ErrPayloadError:    ErrValidationError,
	ErrEtcdUnavailable: ErrEtcdError,
}

// Problem is an error answered by the sidecar: an RFC 9457 problem document, with the txloop error's
// stable Name and its context fields. Fields a given error does not have are empty.
type Problem struct {
	// Status is the HTTP status of the answer.
	Status int `json:"status"`
	// Name is the txloop error's stable name; empty when the answer was not a problem document.
	Name ErrorName `json:"name"`
	// Type is a URI for the name (https://txloop.dev/problems/<name>).
	Type string `json:"type,omitempty"`
	// Title is the HTTP status's text.
	Title string `json:"title,omitempty"`
	// Detail is the error's message; for an answer that was not a problem document, the start of its body.
	Detail string `json:"detail,omitempty"`

	// Xid is the transaction the error is about.
	Xid string `json:"xid,omitempty"`
	// BranchID is the branch the error is about.
	BranchID string `json:"branchId,omitempty"`
	// Field is the invalid field of a ValidationError.
	Field string `json:"field,omitempty"`
	// Outcome is the outcome that won (commit or rollback) of a TransactionAlreadyDecided.
	Outcome string `json:"outcome,omitempty"`
	// TransactionStatus is the transaction's status (the SDK error's "status").
	TransactionStatus string `json:"transactionStatus,omitempty"`
	// DecidedBy is who decided (commit, rollback, deadline, participant:<app>, operator:<login>).
	DecidedBy string `json:"decidedBy,omitempty"`
	// BranchIDs are the branches a BranchesNotPrepared waits for.
	BranchIDs []string `json:"branchIds,omitempty"`
	// Resource is the resource the error is about.
	Resource string `json:"resource,omitempty"`
	// Reason is an OperationRefused's reason.
	Reason string `json:"reason,omitempty"`
	// MaybeWritten says an aborted write may still have landed (read the transaction to know).
	MaybeWritten bool `json:"maybeWritten,omitempty"`
	// Mode is the transaction's mode (tcc, saga, msg), when the error names one.
	Mode string `json:"mode,omitempty"`
	// Kind is an UnknownResource's kind of resource (tcc, saga, msg).
	Kind string `json:"kind,omitempty"`

	// Fields holds every member of the problem document as it was sent, including the ones
	// above and any this version of the package does not name. Nil for a non-problem answer.
	Fields map[string]json.RawMessage `json:"-"`
}

// Error returns "txloop: <Name> (HTTP <status>): <detail>".
func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString("txloop: ")
	if p.Name != "" {
		b.WriteString(string(p.Name))
		b.WriteString(" ")
	}
	fmt.Fprintf(&b, "(HTTP %d)", p.Status)
	if p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	} else if p.Title != "" {
		b.WriteString(": ")
		b.WriteString(p.Title)
	}
	return b.String()
}

// Is reports whether target is an [ErrorName] this problem is (its Name, or a name its Name is a
// kind of: a PayloadError is a ValidationError, an EtcdUnavailable an EtcdError), or a *Problem
// with the same non-empty Name.
func (p *Problem) Is(target error) bool {
	switch t := target.(type) {
	case ErrorName:
		return p.Name.isA(t)
	case *Problem:
		return t != nil && t.Name != "" && p.Name.isA(t.Name)
	}
	return false
}

func (n ErrorName) isA(target ErrorName) bool {
	if n == "" {
		return false
	}
	for name := n; name != ""; name = kindOf[name] {
		if name == target {
			return true
		}
	}
	return false
}

// AsProblem returns the *[Problem] in err's chain, if any.
func AsProblem(err error) (*Problem, bool) {
	var p *Problem
	if errors.As(err, &p) {
		return p, true
	}
	return nil, false
}

// NameOf returns the Name of the *[Problem] in err's chain, or "" when there is none.
func NameOf(err error) ErrorName {
	if p, ok := AsProblem(err); ok {
		return p.Name
	}
	return ""
}

// IsNotFound reports whether err is a TransactionNotFound or BranchNotFound problem.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrTransactionNotFound) || errors.Is(err, ErrBranchNotFound)
}

// IsAlreadyDecided reports whether err is a TransactionAlreadyDecided problem.
func IsAlreadyDecided(err error) bool { return errors.Is(err, ErrTransactionAlreadyDecided) }

// IsRegistrationRefused reports whether err is a BranchRegistrationRefused problem: the Try must not run.
func IsRegistrationRefused(err error) bool { return errors.Is(err, ErrBranchRegistrationRefused) }

// excerptBytes is how much of a body an error keeps, as the sidecar does for a callback's answer.
const excerptBytes = 200

// parseProblem makes the error of a non-2xx answer: the problem document if the body is one,
// else a *Problem with the status and the start of the body.
func parseProblem(status int, contentType string, body []byte) *Problem {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	trimmed := bytes.TrimSpace(body)
	if (mediaType == "application/problem+json" || mediaType == "application/json") && len(trimmed) > 0 && trimmed[0] == '{' {
		var fields map[string]json.RawMessage
		if json.Unmarshal(trimmed, &fields) == nil {
			p := &Problem{}
			if json.Unmarshal(trimmed, p) == nil {
				p.Fields = fields
				// The HTTP status is the answer's, whatever the document says.
				p.Status = status
				if p.Title == "" {
					p.Title = http.StatusText(status)
				}
				if p.Name != "" || p.Detail != "" {
					return p
				}
			}
		}
	}
	return &Problem{Status: status, Title: http.StatusText(status), Detail: excerpt(string(trimmed), excerptBytes)}
}

// excerpt cuts s to at most n bytes, on a rune boundary.
func excerpt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// NonRetryableError marks a callback handler's error as refused for good: [CallbackHandler]
// answers 409. Make one with [NonRetryable].
type NonRetryableError struct {
	// Err is the reason.
	Err error
}

// Error returns the reason's message.
func (e *NonRetryableError) Error() string {
	if e.Err == nil {
		return "refused for good"
	}
	return e.Err.Error()
}

// Unwrap returns the reason.
func (e *NonRetryableError) Unwrap() error { return e.Err }

// NonRetryable marks err as refused for good (the SDK's NonRetryableError): returned by a callback
// handler, it answers 409, so a saga step's action fails its saga at once and a confirm, cancel,
// compensation or delivery is parked for a human at once instead of being retried. Nil stays nil.
func NonRetryable(err error) error {
	if err == nil {
		return nil
	}
	return &NonRetryableError{Err: err}
}

// NonRetryablef is NonRetryable(fmt.Errorf(format, args...)).
func NonRetryablef(format string, args ...interface{}) error {
	return &NonRetryableError{Err: fmt.Errorf(format, args...)}
}

// IsNonRetryable reports whether err's chain holds a [NonRetryableError].
func IsNonRetryable(err error) bool {
	var n *NonRetryableError
	return errors.As(err, &n)
}

// ErrGone, returned by a callback handler (or wrapped: fmt.Errorf("already refunded: %w",
// txloop.ErrGone)), answers 410 Gone: nothing left to do (already done, or nothing to undo), which
// the sidecar counts as done.
var ErrGone = errors.New("txloop: nothing left to do")
