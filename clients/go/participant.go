package txloop

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// RegisterRequest joins a branch of this service to a TRYING transaction (Register), or asks the
// sidecar to run the service's Try path for it (Try).
type RegisterRequest struct {
	// Xid is the transaction's id (the txloop-xid header of the Try call).
	Xid string
	// Deadline is the transaction's deadline, as the initiator passed it (txloop-deadline).
	Deadline time.Time
	// Resource is the TCC resource, as the sidecar's resources file names it.
	Resource string
	// Payload is any JSON-marshalable value stored with the branch and handed to its confirm and
	// cancel; nil for none. A json.RawMessage is sent as it is.
	Payload interface{}
	// BranchID joins a retried call to the same branch once; empty lets the sidecar choose one.
	BranchID string
}

func (r RegisterRequest) body() (map[string]interface{}, error) {
	if r.Deadline.IsZero() {
		return nil, errors.New("deadline: required (the txloop-deadline header of the Try call)")
	}
	body := map[string]interface{}{"xid": r.Xid, "deadline": r.Deadline.UnixMilli(), "resource": r.Resource}
	if r.Payload != nil {
		body["payload"] = r.Payload
	}
	if r.BranchID != "" {
		body["branchId"] = r.BranchID
	}
	return body, nil
}

// Registered is a branch joined to its transaction.
type Registered struct {
	// BranchID is the branch's id.
	BranchID string `json:"branchId"`
	// Existed says the branch id was already registered (a retried call).
	Existed bool `json:"existed"`
	// TryState is what is recorded of its Try: PENDING for a new branch; for an existing one,
	// SUCCEEDED (do not run the Try again), FAILED, or PENDING (an earlier call died: run it again).
	TryState TryState `json:"tryState"`
}

// Register joins a branch of this service to a TRYING transaction, before you run its Try yourself;
// then call [Client.Report]. Refused with [ErrBranchRegistrationRefused] once the transaction was
// decided (anti-hanging: the Try must then not run) and with [ErrDeadlineExceeded] past its
// deadline. [Client.Participant] does Register, the Try and Report for an http.Handler.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (*Registered, error) {
	body, err := req.body()
	if err != nil {
		return nil, fmt.Errorf("txloop: register: %w", err)
	}
	var out Registered
	if err := c.call(ctx, "register", http.MethodPost, "/v1/branches", nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// maxReportError is the longest error a report carries (its schema's maximum).
const maxReportError = 2000

// Report records the outcome of a registered branch's Try: tryErr nil for succeeded, else failed
// with tryErr's message (cut to 2000 bytes). A Try that succeeded after its transaction was rolled
// back still gets its cancel, and Report fails with [ErrTransactionAlreadyDecided].
func (c *Client) Report(ctx context.Context, xid, branchID string, tryErr error) error {
	body := map[string]string{"outcome": "succeeded"}
	if tryErr != nil {
		body["outcome"] = "failed"
		if msg := excerpt(tryErr.Error(), maxReportError); msg != "" {
			body["error"] = msg
		}
	}
	return c.call(ctx, "report", http.MethodPost, "/v1/branches/"+escape(xid)+"/"+escape(branchID)+"/report", nil, body, nil)
}

// TryResult is the outcome of [Client.Try].
type TryResult struct {
	// BranchID is the branch's id.
	BranchID string `json:"branchId"`
	// Replayed says the branch's Try had already succeeded (a retried call): it did not run again
	// and Result is empty.
	Replayed bool `json:"replayed"`
	// Result is the service's answer to its Try (JSON), if it answered one.
	Result json.RawMessage `json:"result,omitempty"`
}

// Try asks the sidecar to register a branch, call the service's Try path (the resource's `try` in
// the resources file) and record its outcome. A Try that answered an error status fails with
// [ErrTryFailed].
func (c *Client) Try(ctx context.Context, req RegisterRequest) (*TryResult, error) {
	body, err := req.body()
	if err != nil {
		return nil, fmt.Errorf("txloop: try: %w", err)
	}
	var out TryResult
	if err := c.call(ctx, "try", http.MethodPost, "/v1/tries", nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ConfirmParticipants asks the sidecar's REST-TCC coordinator to confirm a set of participant
// links (PUT each). Nil when every participant confirmed; a 404 *[Problem] when it came too late
// (every link expired or was cancelled before any confirm); a 409 *Problem for the heuristic
// outcome (some confirmed, some could not).
func (c *Client) ConfirmParticipants(ctx context.Context, links []ParticipantLink) error {
	return c.call(ctx, "restTccConfirm", http.MethodPut, "/coordinator/confirm", nil, map[string]interface{}{"participantLinks": linksOrEmpty(links)}, nil)
}

// CancelParticipants asks the sidecar's REST-TCC coordinator to cancel a set of participant links
// (DELETE each; a participant's 404 or 405 is fine).
func (c *Client) CancelParticipants(ctx context.Context, links []ParticipantLink) error {
	return c.call(ctx, "restTccCancel", http.MethodPut, "/coordinator/cancel", nil, map[string]interface{}{"participantLinks": linksOrEmpty(links)}, nil)
}

func linksOrEmpty(links []ParticipantLink) []ParticipantLink {
	if links == nil {
		return []ParticipantLink{}
	}
	return links
}

// TryContext is the branch a Try handler behind [Client.Participant] runs for.
type TryContext struct {
	// Xid is the transaction's id.
	Xid string
	// BranchID is the branch's id: key your reservation by it, so confirm and cancel find it.
	BranchID string
	// Resource is the TCC resource.
	Resource string
	// Deadline is the transaction's deadline; the handler's context ends then.
	Deadline time.Time
	// Existed says the branch was registered before, its Try still PENDING (an earlier call died
	// or is still running): this Try runs again, so make it idempotent by BranchID.
	Existed bool
	// ViaSidecar says the sidecar called this Try itself (POST /v1/tries): it registered the branch
	// and records the outcome from the answer's status; the middleware only passed it through.
	ViaSidecar bool
}

type tryContextKey struct{}

// TryFromContext returns the branch of a Try handler running behind [Client.Participant].
func TryFromContext(ctx context.Context) (*TryContext, bool) {
	t, ok := ctx.Value(tryContextKey{}).(*TryContext)
	return t, ok && t != nil
}

// BranchID returns the branch id of a Try handler running behind [Client.Participant], or "".
func BranchID(ctx context.Context) string {
	if t, ok := TryFromContext(ctx); ok {
		return t.BranchID
	}
	return ""
}

// ParticipantOptions tunes [Client.Participant]. The zero value (or nil) is fine.
type ParticipantOptions struct {
	// Payload chooses the branch's payload (stored with it and handed to its confirm and cancel)
	// from the request and its body. Default: the body itself when it is JSON, the body as a JSON
	// string when it is something else, none when it is empty.
	Payload func(r *http.Request, body []byte) (interface{}, error)
	// BranchID chooses the branch id, so that a retried call joins the same branch once (a request
	// id header, say). Default: none, the sidecar picks one per call.
	BranchID func(r *http.Request) string
	// Replay answers a retried call whose Try already succeeded (the handler does not run again);
	// TryFromContext gives its branch. Default: 200 {"branchId": "…", "replayed": true}.
	Replay http.Handler
	// Token, when set, is the bearer token the sidecar sends when it calls the Try itself (POST
	// /v1/tries): such a call without it is answered 401.
	Token string
	// MaxBodyBytes bounds the request body read for the payload (default 1 MiB): 413 beyond.
	MaxBodyBytes int64
	// ReportTimeout bounds the report after the handler (default 10 s); it runs even when the
	// caller went away, so that the outcome is recorded.
	ReportTimeout time.Duration
}

const defaultMaxBody = 1 << 20

// Participant returns net/http middleware for the Try of a TCC resource of this service (as the
// sidecar's resources file names it). For each request it:
//
//  1. reads the transaction from the txloop-xid and txloop-deadline headers (400 without them);
//  2. registers the branch (POST /v1/branches): a refusal is answered with the sidecar's problem
//     document, e.g. 409 BranchRegistrationRefused once the transaction was decided, and the
//     handler does not run (anti-hanging);
//  3. runs next with the branch in its context ([TryFromContext], [BranchID]) and a context that
//     ends at the transaction's deadline, its answer held back;
//  4. reports the outcome (POST /v1/branches/{xid}/{branchId}/report): failed when next answered
//     a non-2xx status, panicked or, as a [TryFunc], returned an error; succeeded otherwise;
//  5. sends next's answer; or, when a succeeded Try's report was refused (the transaction was
//     rolled back meanwhile: its cancel is ordered), the sidecar's problem instead.
//
// A call the sidecar makes itself for POST /v1/tries (it carries txloop-branch-id and the
// idempotency-key <xid>/<branchId>/try) is passed through: the sidecar registers and reports it.
func (c *Client) Participant(resource string, opts *ParticipantOptions) func(http.Handler) http.Handler {
	var o ParticipantOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = defaultMaxBody
	}
	if o.ReportTimeout <= 0 {
		o.ReportTimeout = 10 * time.Second
	}
	if o.Payload == nil {
		o.Payload = defaultPayload
	}
	if o.Replay == nil {
		o.Replay = http.HandlerFunc(replayed)
	}
	return func(next http.Handler) http.Handler {
		return &participant{c: c, resource: resource, o: o, next: next}
	}
}

type participant struct {
	c        *Client
	resource string
	o        ParticipantOptions
	next     http.Handler
}

// ServeHTTP runs one Try: register, the handler, report (see Client.Participant).
func (p *participant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	xid := r.Header.Get(HeaderXid)
	if xid == "" {
		writeProblem(w, newProblem(http.StatusBadRequest, ErrValidationError, "a Try call carries the transaction in the "+HeaderXid+" and "+HeaderDeadline+" headers", "header "+HeaderXid))
		return
	}
	rawDeadline := r.Header.Get(HeaderDeadline)
	ms, err := strconv.ParseInt(rawDeadline, 10, 64)
	if err != nil || ms <= 0 {
		writeProblem(w, newProblem(http.StatusBadRequest, ErrValidationError, fmt.Sprintf("must be epoch milliseconds, got %q", rawDeadline), "header "+HeaderDeadline))
		return
	}
	deadline := time.UnixMilli(ms)
	if !time.Now().Before(deadline) {
		pr := newProblem(http.StatusConflict, ErrDeadlineExceeded, fmt.Sprintf("transaction %s passed its deadline; Try not started", xid), "")
		pr.Xid = xid
		writeProblem(w, pr)
		return
	}
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()

	// The sidecar's own call for POST /v1/tries has registered the branch already and reports it
	// itself. Only a caller proving it is the sidecar (the shared token) skips the registration:
	// headers alone can be sent by anyone, and a Try run unregistered would never be confirmed
	// or cancelled. Without a token such a call is registered like any other.
	if branchID := r.Header.Get(HeaderBranchID); branchID != "" && r.Header.Get(HeaderIdempotencyKey) == xid+"/"+branchID+"/try" && p.o.Token != "" && bearerMatches(r, p.o.Token) {
		t := &TryContext{Xid: xid, BranchID: branchID, Resource: p.resource, Deadline: deadline, ViaSidecar: true}
		p.next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, tryContextKey{}, t)))
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.o.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeProblem(w, newProblem(http.StatusRequestEntityTooLarge, ErrPayloadTooLarge, fmt.Sprintf("the request body is over %d bytes", p.o.MaxBodyBytes), ""))
		} else {
			writeProblem(w, newProblem(http.StatusBadRequest, ErrBadRequest, "reading the request body: "+err.Error(), ""))
		}
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	payload, err := p.o.Payload(r, body)
	if err != nil {
		writeProblem(w, newProblem(http.StatusUnprocessableEntity, ErrPayloadError, err.Error(), "payload"))
		return
	}
	req := RegisterRequest{Xid: xid, Deadline: deadline, Resource: p.resource, Payload: payload}
	if p.o.BranchID != nil {
		req.BranchID = p.o.BranchID(r)
	}
	reg, err := p.c.Register(ctx, req)
	if err != nil {
		writeError(w, err)
		return
	}
	t := &TryContext{Xid: xid, BranchID: reg.BranchID, Resource: p.resource, Deadline: deadline, Existed: reg.Existed}
	ctx = context.WithValue(ctx, tryContextKey{}, t)
	if reg.Existed {
		switch reg.TryState {
		case TryStateSucceeded:
			p.o.Replay.ServeHTTP(w, r.WithContext(ctx))
			return
		case TryStateFailed:
			pr := newProblem(http.StatusFailedDependency, ErrTryFailed, "the Try of this branch failed before", "")
			pr.Xid, pr.BranchID, pr.Resource = xid, reg.BranchID, p.resource
			writeProblem(w, pr)
			return
		}
	}

	failure := &tryFailure{}
	rec := &tryRecorder{header: http.Header{}}
	panicked := true
	defer func() {
		if !panicked {
			return
		}
		// The handler panicked: record the Try failed, then let the panic go on.
		v := recover()
		p.report(xid, reg.BranchID, fmt.Errorf("the Try panicked: %v", v))
		panic(v)
	}()
	p.next.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, tryFailureKey{}, failure)))
	panicked = false

	status := rec.statusCode()
	var tryErr error
	switch {
	case failure.err != nil:
		tryErr = failure.err
	case status < 200 || status > 299:
		tryErr = fmt.Errorf("the Try answered %d", status)
		if text := excerpt(string(bytes.TrimSpace(rec.body.Bytes())), excerptBytes); text != "" {
			tryErr = fmt.Errorf("the Try answered %d: %s", status, text)
		}
	}
	if err := p.report(xid, reg.BranchID, tryErr); err != nil && tryErr == nil {
		// Succeeded, but not recorded as such (rolled back meanwhile, or the sidecar is gone):
		// the caller must not take it for a prepared branch.
		writeError(w, err)
		return
	}
	if failure.err != nil && (status >= 200 && status <= 299) {
		// A TryFunc that wrote a 2xx answer and then returned an error: the answer must say failed.
		pr := newProblem(http.StatusFailedDependency, ErrTryFailed, failure.err.Error(), "")
		pr.Xid, pr.BranchID, pr.Resource = xid, reg.BranchID, p.resource
		writeProblem(w, pr)
		return
	}
	rec.sendTo(w)
}

func (p *participant) report(xid, branchID string, tryErr error) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.o.ReportTimeout)
	defer cancel()
	return p.c.Report(ctx, xid, branchID, tryErr)
}

func defaultPayload(_ *http.Request, body []byte) (interface{}, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, nil
	}
	if json.Valid(trimmed) {
		return json.RawMessage(trimmed), nil
	}
	return string(body), nil
}

func replayed(w http.ResponseWriter, r *http.Request) {
	t, _ := TryFromContext(r.Context())
	w.Header().Set("content-type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]interface{}{"branchId": t.BranchID, "replayed": true})
}

// TryFunc is a Try handler that returns an error. Behind [Client.Participant] a non-nil error
// reports the branch failed with the error's message; if the handler wrote nothing (or a 2xx
// answer) the caller gets 424 with a TryFailed problem document carrying the message.
type TryFunc func(w http.ResponseWriter, r *http.Request) error

// ServeHTTP runs f and handles its error as TryFunc says.
func (f TryFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	err := f(w, r)
	if err == nil {
		return
	}
	if failure, ok := r.Context().Value(tryFailureKey{}).(*tryFailure); ok {
		failure.err = err
	}
	if rec, ok := w.(*tryRecorder); ok && rec.wroteHeader {
		return
	}
	pr := newProblem(http.StatusFailedDependency, ErrTryFailed, err.Error(), "")
	if t, ok := TryFromContext(r.Context()); ok {
		pr.Xid, pr.BranchID, pr.Resource = t.Xid, t.BranchID, t.Resource
	}
	writeProblem(w, pr)
}

type tryFailureKey struct{}

type tryFailure struct{ err error }

// tryRecorder holds a Try handler's answer back until its outcome is recorded.
type tryRecorder struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

// Header returns the held-back answer's header.
func (r *tryRecorder) Header() http.Header { return r.header }

// WriteHeader holds the status back (the first one counts; 1xx are dropped).
func (r *tryRecorder) WriteHeader(code int) {
	if r.wroteHeader || code < 200 {
		return
	}
	r.status, r.wroteHeader = code, true
}

// Write holds the body back.
func (r *tryRecorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	return r.body.Write(b)
}

func (r *tryRecorder) statusCode() int {
	if !r.wroteHeader {
		return http.StatusOK
	}
	return r.status
}

func (r *tryRecorder) sendTo(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range r.header {
		h[k] = v
	}
	w.WriteHeader(r.statusCode())
	_, _ = w.Write(r.body.Bytes())
}

// newProblem makes a problem document of this package's own.
func newProblem(status int, name ErrorName, detail, field string) *Problem {
	return &Problem{Type: "https://txloop.dev/problems/" + string(name), Title: http.StatusText(status), Status: status, Name: name, Detail: detail, Field: field}
}

// writeError answers err: a *Problem as the sidecar sent it, anything else (the sidecar could not
// be reached) as 502 SidecarUnavailable.
func writeError(w http.ResponseWriter, err error) {
	if pr, ok := AsProblem(err); ok {
		writeProblem(w, pr)
		return
	}
	writeProblem(w, newProblem(http.StatusBadGateway, ErrSidecarUnavailable, err.Error(), ""))
}

// writeProblem answers a problem document (the sidecar's members as it sent them, when it did).
func writeProblem(w http.ResponseWriter, p *Problem) {
	var body []byte
	var err error
	if p.Fields != nil {
		body, err = json.Marshal(p.Fields)
	} else {
		body, err = json.Marshal(p)
	}
	if err != nil {
		body = []byte(`{"status":500,"name":"InternalError"}`)
	}
	status := p.Status
	if status < 400 || status > 599 {
		status = http.StatusBadGateway
	}
	w.Header().Set("content-type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// bearerMatches compares the request's bearer token with token in constant time.
func bearerMatches(r *http.Request, token string) bool {
	given := []byte(r.Header.Get("authorization"))
	expected := []byte("Bearer " + token)
	return subtle.ConstantTimeCompare(given, expected) == 1
}
