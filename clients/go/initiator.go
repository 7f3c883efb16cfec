package txloop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// BeginRequest begins a TCC transaction.
type BeginRequest struct {
	// Name names the transaction (1-128 characters), for people reading `txloop get`.
	Name string
	// Timeout is how long it may stay undecided before it is rolled back; zero for the sidecar's
	// default (30 s).
	Timeout time.Duration
}

// Begin begins a TCC transaction: TRYING until Commit, Rollback or its deadline. Pass
// [Begun.Headers] (or [Begun.SetHeaders]) to each participant's Try.
func (c *Client) Begin(ctx context.Context, req BeginRequest) (*Begun, error) {
	body := map[string]interface{}{"name": req.Name}
	if err := putTimeout(body, "timeoutMs", req.Timeout); err != nil {
		return nil, fmt.Errorf("txloop: begin: %w", err)
	}
	var out struct {
		Xid      string            `json:"xid"`
		Deadline int64             `json:"deadline"`
		Headers  map[string]string `json:"headers"`
	}
	if err := c.call(ctx, "begin", http.MethodPost, "/v1/transactions", nil, body, &out); err != nil {
		return nil, err
	}
	return &Begun{Xid: out.Xid, Deadline: time.UnixMilli(out.Deadline), Headers: out.Headers}, nil
}

// DecideOption is an option of Commit, Rollback, SubmitMessage and DiscardMessage.
type DecideOption func(*decideBody)

type decideBody struct {
	Reason string `json:"reason,omitempty"` // DecideRequest.reason
}

// Reason records why the decision was made (up to 1000 characters; longer is cut).
func Reason(reason string) DecideOption {
	return func(b *decideBody) { b.Reason = excerpt(reason, 1000) }
}

// decision is the body of a decision: {} without a reason. The contract makes the body optional,
// but the first sidecar refused a POST without one (422 "body: must be object"; a bodiless POST
// is an empty one since main's d25fbfe), so one is always sent: valid for either.
func decision(opts []DecideOption) interface{} {
	var b decideBody
	for _, opt := range opts {
		opt(&b)
	}
	return &b
}

// Commit decides commit (one compare-and-swap in etcd); the participants' leaders confirm on their
// own. It returns once etcd holds the decision. Refused with [ErrDeadlineExceeded] past the
// deadline, [ErrBranchesNotPrepared] while a Try has not succeeded, [ErrTransactionAlreadyDecided]
// after a rollback.
func (c *Client) Commit(ctx context.Context, xid string, opts ...DecideOption) error {
	return c.call(ctx, "commit", http.MethodPost, "/v1/transactions/"+escape(xid)+"/commit", nil, decision(opts), nil)
}

// Rollback decides rollback: a TCC transaction's branches are cancelled, a saga is compensated, a
// prepared message discarded. Always allowed before a commit.
func (c *Client) Rollback(ctx context.Context, xid string, opts ...DecideOption) error {
	return c.call(ctx, "rollback", http.MethodPost, "/v1/transactions/"+escape(xid)+"/rollback", nil, decision(opts), nil)
}

// Get reads a transaction (any mode) and its branches.
func (c *Client) Get(ctx context.Context, xid string) (*Transaction, error) {
	var t Transaction
	if err := c.call(ctx, "get", http.MethodGet, "/v1/transactions/"+escape(xid), nil, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ListOptions filters [Client.List].
type ListOptions struct {
	// App lists another service's transactions; empty for the sidecar's own.
	App string
	// Statuses keeps only these; none keeps all.
	Statuses []Status
}

// List returns a service's transactions, oldest first.
func (c *Client) List(ctx context.Context, opts ListOptions) ([]Transaction, error) {
	query := url.Values{}
	if opts.App != "" {
		query.Set("app", opts.App)
	}
	if len(opts.Statuses) > 0 {
		names := make([]string, len(opts.Statuses))
		for i, s := range opts.Statuses {
			names[i] = string(s)
		}
		query.Set("status", strings.Join(names, ","))
	}
	var out struct {
		Items []Transaction `json:"items"`
	}
	if err := c.call(ctx, "list", http.MethodGet, "/v1/transactions", query, nil, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// maxWait is the longest one wait request asks the sidecar for (its schema's maximum).
const maxWait = 600 * time.Second

// WaitForCompletion waits until the transaction finished (COMMITTED, ROLLED_BACK, SUCCEEDED,
// COMPENSATED, DELIVERED, DISCARDED) and returns it. It waits as long as ctx allows: with no
// deadline on ctx, until it finishes or ctx is cancelled (in requests of up to 10 minutes each).
// When ctx's deadline comes first the error is the sidecar's [ErrDeadlineExceeded] problem
// ("still <status> after waiting …"), asked for a little before ctx ends, or else ctx's own error.
func (c *Client) WaitForCompletion(ctx context.Context, xid string) (*Transaction, error) {
	for {
		wait := maxWait
		deadline, bounded := ctx.Deadline()
		if bounded {
			left := time.Until(deadline)
			if left <= 0 {
				return nil, fmt.Errorf("txloop: waitForCompletion: %w", context.DeadlineExceeded)
			}
			if left < wait {
				wait = left
			}
			// Ask for a little less than what is left, so that the sidecar's answer comes before
			// ctx ends the request.
			if wait > 200*time.Millisecond {
				wait -= 50 * time.Millisecond
			}
		}
		var t Transaction
		err := c.call(ctx, "waitForCompletion", http.MethodPost, "/v1/transactions/"+escape(xid)+"/wait", nil, map[string]int64{"timeoutMs": millis(wait)}, &t)
		if err == nil {
			return &t, nil
		}
		// The sidecar's wait ended before ctx's: ask again.
		if errors.Is(err, ErrDeadlineExceeded) && ctx.Err() == nil && (!bounded || time.Until(deadline) > 100*time.Millisecond) {
			continue
		}
		return nil, err
	}
}

// RunTransaction begins a transaction and runs fn with it (fn's ctx ends at the transaction's
// deadline; pass tx's headers to each Try). If fn returns nil it commits; if the commit fails (a Try
// not prepared, the deadline passed) it rolls back rather than leave that to the deadline. If fn
// returns an error (or panics; the panic goes on after) it rolls back with "aborted: <fn's error>"
// as the reason and returns fn's error. The xid is returned once etcd holds the decision; the
// participants' leaders confirm or cancel on their own ([Client.WaitForCompletion] waits for that).
func (c *Client) RunTransaction(ctx context.Context, req BeginRequest, fn func(ctx context.Context, tx *Begun) error) (xid string, err error) {
	tx, err := c.Begin(ctx, req)
	if err != nil {
		return "", err
	}
	txCtx, cancel := context.WithDeadline(ctx, tx.Deadline)
	defer cancel()
	// On a context of its own: ctx (or txCtx) may be what ended fn.
	rollback := func(reason string) error {
		rbCtx, rbCancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer rbCancel()
		return c.Rollback(rbCtx, tx.Xid, Reason(reason))
	}
	returned := false
	defer func() {
		if !returned {
			_ = rollback("aborted: the transaction's function panicked")
		}
	}()
	fnErr := fn(txCtx, tx)
	returned = true
	if fnErr != nil {
		if rbErr := rollback("aborted: " + fnErr.Error()); rbErr != nil && !errors.Is(rbErr, ErrTransactionAlreadyDecided) {
			return tx.Xid, fmt.Errorf("%w (and the rollback failed, the deadline will roll it back: %v)", fnErr, rbErr)
		}
		return tx.Xid, fnErr
	}
	if err := c.Commit(ctx, tx.Xid); err != nil {
		// If the commit did land after all, the rollback loses the compare-and-swap and changes nothing.
		if !errors.Is(err, ErrTransactionAlreadyDecided) {
			_ = rollback("commit failed: " + err.Error())
		}
		return tx.Xid, err
	}
	return tx.Xid, nil
}

// Saga submits a saga. It returns once etcd holds the saga with its first group ordered; from then
// on its steps' owners run it (the caller may die right after). Wait for SUCCEEDED or COMPENSATED
// with [Client.WaitForCompletion]; [Client.Rollback] compensates it at once.
func (c *Client) Saga(ctx context.Context, req SagaRequest) (*SagaSubmitted, error) {
	body := map[string]interface{}{"name": req.Name, "steps": req.Steps}
	if req.Steps == nil {
		body["steps"] = []SagaGroup{}
	}
	if err := putTimeout(body, "timeoutMs", req.Timeout); err != nil {
		return nil, fmt.Errorf("txloop: saga: %w", err)
	}
	var out struct {
		Xid      string `json:"xid"`
		Deadline int64  `json:"deadline"`
	}
	if err := c.call(ctx, "saga", http.MethodPost, "/v1/sagas", nil, body, &out); err != nil {
		return nil, err
	}
	return &SagaSubmitted{Xid: out.Xid, Deadline: time.UnixMilli(out.Deadline)}, nil
}

// PrepareMessage prepares a 2-phase message (PREPARED, nothing delivered). Run your local
// transaction, then [Client.SubmitMessage] once it committed (or [Client.DiscardMessage] if it
// did not). A message left prepared is decided by the producer's check-back ([CheckBackHandler]).
func (c *Client) PrepareMessage(ctx context.Context, req MessageRequest) (*PreparedMessage, error) {
	body := map[string]interface{}{"name": req.Name, "consumers": req.Consumers}
	if req.Consumers == nil {
		body["consumers"] = []MessageConsumer{}
	}
	if err := putTimeout(body, "checkAfterMs", req.CheckAfter); err != nil {
		return nil, fmt.Errorf("txloop: prepareMessage: %w", err)
	}
	var out struct {
		Xid         string `json:"xid"`
		CheckBackAt int64  `json:"checkBackAt"`
	}
	if err := c.call(ctx, "prepareMessage", http.MethodPost, "/v1/messages", nil, body, &out); err != nil {
		return nil, err
	}
	return &PreparedMessage{Xid: out.Xid, CheckBackAt: time.UnixMilli(out.CheckBackAt)}, nil
}

// SubmitMessage submits a prepared message: every consumer gets it at least once. After a
// discard it fails with [ErrTransactionAlreadyDecided].
func (c *Client) SubmitMessage(ctx context.Context, xid string, opts ...DecideOption) error {
	return c.call(ctx, "submitMessage", http.MethodPost, "/v1/messages/"+escape(xid)+"/submit", nil, decision(opts), nil)
}

// DiscardMessage discards a prepared message: nothing is delivered. After a submit it fails with
// [ErrTransactionAlreadyDecided] (a submitted message is never rolled back).
func (c *Client) DiscardMessage(ctx context.Context, xid string, opts ...DecideOption) error {
	return c.call(ctx, "discardMessage", http.MethodPost, "/v1/messages/"+escape(xid)+"/discard", nil, decision(opts), nil)
}

// RunMessage prepares a message, runs fn (your local transaction), and submits the message if fn
// returns nil or discards it if fn returns an error. A submit that fails after fn returned nil is
// left to the check-back (the local transaction committed); its error is returned with the xid.
func (c *Client) RunMessage(ctx context.Context, req MessageRequest, fn func(ctx context.Context, msg *PreparedMessage) error) (xid string, err error) {
	msg, err := c.PrepareMessage(ctx, req)
	if err != nil {
		return "", err
	}
	if fnErr := fn(ctx, msg); fnErr != nil {
		dCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if dErr := c.DiscardMessage(dCtx, msg.Xid, Reason(fnErr.Error())); dErr != nil {
			return msg.Xid, fmt.Errorf("%w (and the discard failed, the check-back will decide: %v)", fnErr, dErr)
		}
		return msg.Xid, fnErr
	}
	return msg.Xid, c.SubmitMessage(ctx, msg.Xid)
}

// Deliveries returns a message's status and each consumer's delivery (any service may ask).
func (c *Client) Deliveries(ctx context.Context, xid string) (*Deliveries, error) {
	var d Deliveries
	if err := c.call(ctx, "deliveries", http.MethodGet, "/v1/messages/"+escape(xid)+"/deliveries", nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// putTimeout sets body[key] to d in milliseconds; zero leaves it out.
func putTimeout(body map[string]interface{}, key string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%s: negative duration %s", key, d)
	}
	if d > 0 {
		body[key] = millis(d)
	}
	return nil
}
