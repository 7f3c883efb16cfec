package txloop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Callback is one phase-2 attempt the sidecar asks of the service: a TCC branch's confirm or
// cancel, a saga step's action or compensation, or a message's delivery. It is read from the
// callback's JSON body, and from its headers for what the body lacks.
type Callback struct {
	// Xid is the transaction's id.
	Xid string `json:"xid"`
	// BranchID is the branch's id (a TCC branch's is what its Try ran under).
	BranchID string `json:"branchId"`
	// Resource is the resource, as the resources file names it.
	Resource string `json:"resource"`
	// Action is what to do: confirm, cancel, action, compensate or deliver.
	Action Action `json:"action"`
	// Payload is the branch's payload as JSON (null or empty when it has none); see DecodePayload.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Attempt numbers the attempts of this branch, from 1, across leaders and operator retries.
	Attempt int `json:"attempt"`
	// TryState is, for a confirm or cancel, the Try's recorded outcome (a cancel of a FAILED Try is
	// an empty rollback; of a PENDING one, release only what your data shows under BranchID); for a
	// compensation, the action's.
	TryState TryState `json:"tryState,omitempty"`
	// FencingToken is the leader term that started the attempt, a decimal integer that grows with
	// every term: make your write conditional on (FencingToken, Attempt) so that a stale attempt
	// cannot apply its effect after a newer one. Compare it with [CompareFencing].
	FencingToken string `json:"fencingToken"`
	// IdempotencyKey is <xid>/<branchId>/<action> (the idempotency-key header): make the handler
	// idempotent by it, phase 2 is at least once.
	IdempotencyKey string `json:"-"`
}

// DecodePayload unmarshals the payload into v.
func (cb *Callback) DecodePayload(v interface{}) error {
	if len(bytes.TrimSpace(cb.Payload)) == 0 {
		return json.Unmarshal([]byte("null"), v)
	}
	return json.Unmarshal(cb.Payload, v)
}

// CompareFencing orders two attempts by (fencing token, attempt): negative when a is older than b,
// zero when they are the same attempt, positive when a is newer. Tokens are decimal integers of any
// length (leading zeros aside).
func CompareFencing(aToken string, aAttempt int, bToken string, bAttempt int) int {
	a, b := strings.TrimLeft(aToken, "0"), strings.TrimLeft(bToken, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	if c := strings.Compare(a, b); c != 0 {
		return c
	}
	switch {
	case aAttempt < bAttempt:
		return -1
	case aAttempt > bAttempt:
		return 1
	}
	return 0
}

// CallbackFunc handles one phase-2 attempt. Its return decides the attempt: nil done (204); an
// error marked [NonRetryable] refused for good (409); an error wrapping [ErrGone] nothing left to
// do, counted as done (410); any other error a failed attempt (500 with its message), retried
// with the branch's backoff. ctx ends when the sidecar gives the attempt up (its handler timeout).
type CallbackFunc func(ctx context.Context, cb *Callback) error

// TypedCallback adapts a handler that takes the payload decoded as P. A payload that does not
// decode as P never will: it is refused for good (409).
func TypedCallback[P any](fn func(ctx context.Context, cb *Callback, payload P) error) CallbackFunc {
	return func(ctx context.Context, cb *Callback) error {
		var payload P
		if err := cb.DecodePayload(&payload); err != nil {
			return NonRetryable(fmt.Errorf("the payload of %s does not decode as %T: %w", cb.IdempotencyKey, payload, err))
		}
		return fn(ctx, cb, payload)
	}
}

// HandlerOptions tunes [CallbackHandler] and [CheckBackHandler]. The zero value (or nil) is fine.
type HandlerOptions struct {
	// Token, when set, is the bearer token the sidecar must send (its --token-file): a call without
	// it is answered 401 (and retried by the sidecar).
	Token string
	// MaxBodyBytes bounds a callback's body (default 1 MiB): 413 beyond.
	MaxBodyBytes int64
	// ErrorLog gets a line for each handler that panicked; nil uses the log package's standard logger.
	ErrorLog *log.Logger
}

func (o *HandlerOptions) orDefaults() HandlerOptions {
	var h HandlerOptions
	if o != nil {
		h = *o
	}
	if h.MaxBodyBytes <= 0 {
		h.MaxBodyBytes = defaultMaxBody
	}
	return h
}

// CallbackHandler serves the sidecar's phase-2 callbacks at one path of the resources file
// (confirm, cancel, action, compensate or deliver): POST only (405 otherwise); the body and headers
// decoded into a [Callback] (400 when they lack what every callback carries); fn's return mapped to
// the answer as [CallbackFunc] says. A handler that panics answers 500 (the panic is logged), so
// the attempt is retried.
func CallbackHandler(fn CallbackFunc, opts *HandlerOptions) http.Handler {
	o := opts.orDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := readCallback(w, r, o)
		if !ok {
			return
		}
		cb, err := decodeCallback(r, body)
		if err != nil {
			writeText(w, http.StatusBadRequest, err.Error())
			return
		}
		err = safely(o, cb.IdempotencyKey, func() error { return fn(r.Context(), cb) })
		status, text := answerOf(err)
		writeText(w, status, text)
	})
}

// answerOf maps a handler's return to the callback contract's status and body.
func answerOf(err error) (int, string) {
	switch {
	case err == nil:
		return http.StatusNoContent, ""
	case errors.Is(err, ErrGone):
		return http.StatusGone, err.Error()
	case IsNonRetryable(err):
		return http.StatusConflict, err.Error()
	default:
		return http.StatusInternalServerError, err.Error()
	}
}

// safely runs fn, turning a panic into an error (http.ErrAbortHandler goes on).
func safely(o HandlerOptions, what string, fn func() error) (err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler {
			panic(v)
		}
		logf := log.Printf
		if o.ErrorLog != nil {
			logf = o.ErrorLog.Printf
		}
		logf("txloop: callback %s panicked: %v\n%s", what, v, debug.Stack())
		err = fmt.Errorf("the handler panicked: %v", v)
	}()
	return fn()
}

func readCallback(w http.ResponseWriter, r *http.Request, o HandlerOptions) ([]byte, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("allow", http.MethodPost)
		writeText(w, http.StatusMethodNotAllowed, "the sidecar's callbacks are POSTs")
		return nil, false
	}
	if o.Token != "" && !bearerMatches(r, o.Token) {
		writeText(w, http.StatusUnauthorized, "a bearer token is required (authorization: Bearer <token>)")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, o.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeText(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the callback's body is over %d bytes", o.MaxBodyBytes))
		} else {
			writeText(w, http.StatusBadRequest, "reading the callback's body: "+err.Error())
		}
		return nil, false
	}
	return body, true
}

// decodeCallback reads a callback from its body, and from its headers for what the body lacks.
func decodeCallback(r *http.Request, body []byte) (*Callback, error) {
	cb := &Callback{}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, cb); err != nil {
			return nil, fmt.Errorf("the callback's body is not a Callback: %v", err)
		}
	}
	h := r.Header
	if cb.Xid == "" {
		cb.Xid = h.Get(HeaderXid)
	}
	if cb.BranchID == "" {
		cb.BranchID = h.Get(HeaderBranchID)
	}
	if cb.FencingToken == "" {
		cb.FencingToken = h.Get(HeaderFencingToken)
	}
	if cb.Attempt == 0 && h.Get(HeaderAttempt) != "" {
		n, err := strconv.Atoi(h.Get(HeaderAttempt))
		if err != nil {
			return nil, fmt.Errorf("header %s: %q is not a number", HeaderAttempt, h.Get(HeaderAttempt))
		}
		cb.Attempt = n
	}
	cb.IdempotencyKey = h.Get(HeaderIdempotencyKey)
	if cb.Action == "" && cb.IdempotencyKey != "" {
		if i := strings.LastIndexByte(cb.IdempotencyKey, '/'); i >= 0 {
			cb.Action = Action(cb.IdempotencyKey[i+1:])
		}
	}
	if cb.IdempotencyKey == "" && cb.Xid != "" && cb.BranchID != "" && cb.Action != "" {
		cb.IdempotencyKey = cb.Xid + "/" + cb.BranchID + "/" + string(cb.Action)
	}
	var missing []string
	if cb.Xid == "" {
		missing = append(missing, "xid")
	}
	if cb.BranchID == "" {
		missing = append(missing, "branchId")
	}
	if cb.Action == "" {
		missing = append(missing, "action")
	}
	if cb.Attempt < 1 {
		missing = append(missing, "attempt")
	}
	if cb.FencingToken == "" {
		missing = append(missing, "fencingToken")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("not a txloop callback: no %s in its body or headers", strings.Join(missing, ", "))
	}
	return cb, nil
}

// CheckBack is the sidecar's question about a message still PREPARED (its producer died between
// prepare and submit, or its local transaction is still running): did the local transaction commit?
type CheckBack struct {
	// Xid is the message's id.
	Xid string `json:"xid"`
	// Name is the message's name, as prepared (the checkBacks entry of the resources file).
	Name string `json:"name"`
	// PreparedAt is when the message was prepared.
	PreparedAt time.Time `json:"-"`
}

// CheckBackAnswer is a check-back's answer.
type CheckBackAnswer string

// The answers of a check-back. It must never guess: unknown is asked again later.
const (
	// AnswerCommitted: the local transaction committed; the message is submitted.
	AnswerCommitted CheckBackAnswer = "committed"
	// AnswerRolledBack: the local transaction did not commit and never will; the message is discarded.
	AnswerRolledBack CheckBackAnswer = "rolled-back"
	// AnswerUnknown: not known yet (still running); asked again after checkAfterMs.
	AnswerUnknown CheckBackAnswer = "unknown"
)

// CheckBackFunc answers a check-back. An error answers 500 (asked again later).
type CheckBackFunc func(ctx context.Context, cb *CheckBack) (CheckBackAnswer, error)

// CheckBackHandler serves the sidecar's check-backs at a path of the resources file's checkBacks:
// POST only; it answers 200 {"answer": "committed" | "rolled-back" | "unknown"}, and 500 with the
// message when fn fails, panics or answers anything else.
func CheckBackHandler(fn CheckBackFunc, opts *HandlerOptions) http.Handler {
	o := opts.orDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := readCallback(w, r, o)
		if !ok {
			return
		}
		var aux struct {
			Xid        string   `json:"xid"`
			Name       string   `json:"name"`
			PreparedAt jsonTime `json:"preparedAt"`
		}
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, &aux); err != nil {
				writeText(w, http.StatusBadRequest, fmt.Sprintf("the check-back's body is not {xid, name, preparedAt}: %v", err))
				return
			}
		}
		cb := &CheckBack{Xid: aux.Xid, Name: aux.Name, PreparedAt: aux.PreparedAt.Time}
		if cb.Xid == "" {
			cb.Xid = r.Header.Get(HeaderXid)
		}
		if cb.Xid == "" {
			writeText(w, http.StatusBadRequest, "not a txloop check-back: no xid in its body or headers")
			return
		}
		var answer CheckBackAnswer
		err := safely(o, cb.Xid+" check-back", func() error {
			var err error
			answer, err = fn(r.Context(), cb)
			return err
		})
		if err == nil && answer != AnswerCommitted && answer != AnswerRolledBack && answer != AnswerUnknown {
			err = fmt.Errorf("the check-back answered %q, not committed, rolled-back or unknown", answer)
		}
		if err != nil {
			writeText(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(map[string]CheckBackAnswer{"answer": answer})
	})
}

// writeText answers status with text as text/plain (nothing for 204).
func writeText(w http.ResponseWriter, status int, text string) {
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("content-type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}
