package txloop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// The headers that carry a transaction to a participant's Try, and the ones of a callback.
const (
	// HeaderXid carries the transaction's id.
	HeaderXid = "txloop-xid"
	// HeaderDeadline carries the transaction's deadline, in epoch milliseconds.
	HeaderDeadline = "txloop-deadline"
	// HeaderBranchID carries the branch's id (callbacks, and the sidecar's call of a Try path).
	HeaderBranchID = "txloop-branch-id"
	// HeaderAttempt carries a callback's attempt number.
	HeaderAttempt = "txloop-attempt"
	// HeaderFencingToken carries a callback's fencing token (the leader term that started the attempt).
	HeaderFencingToken = "txloop-fencing-token"
	// HeaderIdempotencyKey carries <xid>/<branchId>/<action>.
	HeaderIdempotencyKey = "idempotency-key"
)

// Status is a transaction's status.
type Status string

// The statuses of the three modes.
const (
	// StatusTrying: a TCC transaction before its decision.
	StatusTrying Status = "TRYING"
	// StatusCommitting: commit decided, confirms running.
	StatusCommitting Status = "COMMITTING"
	// StatusRollingBack: rollback decided, cancels running.
	StatusRollingBack Status = "ROLLING_BACK"
	// StatusCommitted: every branch confirmed.
	StatusCommitted Status = "COMMITTED"
	// StatusRolledBack: every branch cancelled.
	StatusRolledBack Status = "ROLLED_BACK"
	// StatusRunning: a saga running its steps.
	StatusRunning Status = "RUNNING"
	// StatusCompensating: a saga compensating its steps in reverse.
	StatusCompensating Status = "COMPENSATING"
	// StatusSucceeded: every step of a saga succeeded.
	StatusSucceeded Status = "SUCCEEDED"
	// StatusCompensated: a saga that failed, every step compensated.
	StatusCompensated Status = "COMPENSATED"
	// StatusPrepared: a 2-phase message prepared, not yet submitted or discarded.
	StatusPrepared Status = "PREPARED"
	// StatusSubmitted: a message submitted, its deliveries running.
	StatusSubmitted Status = "SUBMITTED"
	// StatusDelivered: every consumer acknowledged the message.
	StatusDelivered Status = "DELIVERED"
	// StatusDiscarded: a message discarded; nothing delivered.
	StatusDiscarded Status = "DISCARDED"
)

// Finished reports whether the status is final (what WaitForCompletion waits for).
func (s Status) Finished() bool {
	switch s {
	case StatusCommitted, StatusRolledBack, StatusSucceeded, StatusCompensated, StatusDelivered, StatusDiscarded:
		return true
	}
	return false
}

// TryState is what is recorded of a Try (or, in a compensation's callback, of a saga step's action).
type TryState string

// The recorded outcomes of a Try.
const (
	// TryStatePending: no outcome recorded (still running, or its process died before reporting).
	TryStatePending TryState = "PENDING"
	// TryStateSucceeded: the Try succeeded.
	TryStateSucceeded TryState = "SUCCEEDED"
	// TryStateFailed: the Try failed (an empty rollback: nothing to release).
	TryStateFailed TryState = "FAILED"
)

// Action is what a branch's phase 2 does.
type Action string

// The phase-2 actions.
const (
	// ActionConfirm: a TCC branch's confirm.
	ActionConfirm Action = "confirm"
	// ActionCancel: a TCC branch's cancel.
	ActionCancel Action = "cancel"
	// ActionSagaAction: a saga step's action.
	ActionSagaAction Action = "action"
	// ActionCompensate: a saga step's compensation.
	ActionCompensate Action = "compensate"
	// ActionDeliver: a message consumer's delivery.
	ActionDeliver Action = "deliver"
)

// Begun is a TCC transaction just begun.
type Begun struct {
	// Xid is the transaction's id.
	Xid string
	// Deadline is when the transaction is rolled back if still undecided.
	Deadline time.Time
	// Headers carry the transaction to a participant (txloop-xid, txloop-deadline).
	Headers map[string]string
}

// SetHeaders puts the transaction's headers on h (an outgoing Try request's).
func (b *Begun) SetHeaders(h http.Header) {
	for k, v := range b.Headers {
		h.Set(k, v)
	}
	if h.Get(HeaderXid) == "" {
		h.Set(HeaderXid, b.Xid)
	}
	if h.Get(HeaderDeadline) == "" {
		h.Set(HeaderDeadline, strconv.FormatInt(b.Deadline.UnixMilli(), 10))
	}
}

// Decision is a transaction's decision.
type Decision struct {
	// Outcome is commit or rollback.
	Outcome string `json:"outcome"`
	// By is who decided: commit, rollback, deadline, participant:<app>, operator:<login>.
	By string `json:"by"`
	// Reason is the reason given with the decision, if any.
	Reason string `json:"reason,omitempty"`
	// At is when it was decided.
	At time.Time `json:"-"`
}

// UnmarshalJSON reads the decision, its "at" in epoch milliseconds.
func (d *Decision) UnmarshalJSON(b []byte) error {
	type plain Decision
	aux := struct {
		*plain
		At jsonTime `json:"at"`
	}{plain: (*plain)(d)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	d.At = aux.At.Time
	return nil
}

// Branch is a branch of a transaction as its initiator sees it.
type Branch struct {
	// BranchID is the branch's id.
	BranchID string `json:"branchId"`
	// Owner is the service (app) that runs its phase 2.
	Owner string `json:"owner"`
	// Resource is the owner's resource.
	Resource string `json:"resource"`
	// TryState is the Try's recorded outcome (a saga step's action's, a delivery's).
	TryState TryState `json:"tryState"`
	// Action is the phase 2 ordered, once ordered.
	Action Action `json:"action,omitempty"`
	// State is ACTIVE, DONE or PARKED, once phase 2 was ordered.
	State string `json:"state,omitempty"`
	// Attempts counts the phase-2 attempts.
	Attempts int `json:"attempts"`
	// LastError is the last failed attempt's error.
	LastError string `json:"lastError,omitempty"`
	// Resolution is how a human resolved it (confirmed, cancelled, compensated, delivered).
	Resolution string `json:"resolution,omitempty"`
	// Group is a saga step's group (groups run in order, the steps of one group concurrently).
	Group *int `json:"group,omitempty"`
}

// Transaction is a transaction of any mode and its branches.
type Transaction struct {
	// Xid is the transaction's id.
	Xid string `json:"xid"`
	// App is the initiator's service.
	App string `json:"app"`
	// Mode is tcc, saga or msg.
	Mode string `json:"mode"`
	// Name is the name it was begun with.
	Name string `json:"name"`
	// Status is its status.
	Status Status `json:"status"`
	// CreatedAt is when it was begun.
	CreatedAt time.Time `json:"-"`
	// Deadline is its deadline.
	Deadline time.Time `json:"-"`
	// Decision is its decision, once decided.
	Decision *Decision `json:"decision,omitempty"`
	// CompletedAt is when it finished; zero until then.
	CompletedAt time.Time `json:"-"`
	// Heuristic says a human resolved some branch against the decision.
	Heuristic bool `json:"heuristic"`
	// Branches are the branches that exist (in a saga, the steps whose group was ordered).
	Branches []Branch `json:"branches"`
	// Steps are a saga's declared steps, in order, every one of them (a step whose group was not
	// ordered yet has no branch).
	Steps []DeclaredStep `json:"steps,omitempty"`
}

// DeclaredStep is a saga's step as declared.
type DeclaredStep struct {
	// BranchID is the step's branch id.
	BranchID string `json:"branchId"`
	// Owner is the service that runs it.
	Owner string `json:"owner"`
	// Resource is its resource there.
	Resource string `json:"resource"`
	// Group is its group: groups run in order, the steps of one group concurrently.
	Group int `json:"group"`
}

// UnmarshalJSON reads the transaction, its times as RFC 3339 strings or epoch milliseconds.
func (t *Transaction) UnmarshalJSON(b []byte) error {
	type plain Transaction
	aux := struct {
		*plain
		CreatedAt   jsonTime `json:"createdAt"`
		Deadline    jsonTime `json:"deadline"`
		CompletedAt jsonTime `json:"completedAt"`
	}{plain: (*plain)(t)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	t.CreatedAt, t.Deadline, t.CompletedAt = aux.CreatedAt.Time, aux.Deadline.Time, aux.CompletedAt.Time
	return nil
}

// SagaStep is one step of a saga: the service that owns it and its resource there.
type SagaStep struct {
	// Service is the owning service (app).
	Service string `json:"service"`
	// Resource is the step's resource in that service.
	Resource string `json:"resource"`
	// Payload is any JSON-marshalable value, handed to the step's action and compensation; nil for none.
	Payload interface{} `json:"payload,omitempty"`
	// BranchID is the step's branch id; empty lets the sidecar choose one.
	BranchID string `json:"branchId,omitempty"`
}

// SagaGroup is a group of steps run concurrently; a group of one is a plain step. Groups run in order.
type SagaGroup []SagaStep

// MarshalJSON writes a group of one as its step, a larger group as an array.
func (g SagaGroup) MarshalJSON() ([]byte, error) {
	if len(g) == 1 {
		return json.Marshal(g[0])
	}
	return json.Marshal([]SagaStep(g))
}

// SagaRequest declares a saga.
type SagaRequest struct {
	// Name names the saga (1-128 characters).
	Name string
	// Timeout is how long it may run before it is compensated; zero for the sidecar's default.
	Timeout time.Duration
	// Steps are its groups, in order: []txloop.SagaGroup{{a}, {b, c}, {d}} runs a, then b and c
	// concurrently, then d.
	Steps []SagaGroup
}

// SagaSubmitted is a saga etcd holds, its first group ordered.
type SagaSubmitted struct {
	// Xid is the saga's id.
	Xid string
	// Deadline is when it is compensated if still running.
	Deadline time.Time
}

// MessageConsumer is one consumer of a 2-phase message.
type MessageConsumer struct {
	// Service is the consuming service (app).
	Service string `json:"service"`
	// Resource is its consumer resource.
	Resource string `json:"resource"`
	// Payload is any JSON-marshalable value, handed to its delivery; nil for none.
	Payload interface{} `json:"payload,omitempty"`
	// BranchID is the delivery's branch id; empty lets the sidecar choose one.
	BranchID string `json:"branchId,omitempty"`
}

// MessageRequest prepares a 2-phase message.
type MessageRequest struct {
	// Name names the message; the producer's check-back is registered for it (checkBacks in the resources file).
	Name string
	// Consumers get the message, each at least once, after its submit.
	Consumers []MessageConsumer
	// CheckAfter is how long after the prepare the check-back is asked, if the message is still
	// prepared; zero for the sidecar's default (10 s).
	CheckAfter time.Duration
}

// PreparedMessage is a prepared 2-phase message: submit it once your local transaction committed.
type PreparedMessage struct {
	// Xid is the message's id.
	Xid string
	// CheckBackAt is when the check-back is asked if the message is still prepared.
	CheckBackAt time.Time
}

// Delivery is one consumer's delivery of a message.
type Delivery struct {
	// Service is the consumer's service.
	Service string `json:"service"`
	// Resource is its consumer resource.
	Resource string `json:"resource"`
	// BranchID is the delivery's branch.
	BranchID string `json:"branchId"`
	// Status is DELIVERING, DELIVERED, RESOLVED_DELIVERED, PARKED; before a submit PREPARED, after a discard DISCARDED.
	Status string `json:"status"`
	// Attempts counts the delivery attempts.
	Attempts int `json:"attempts"`
	// LastError is the last failed attempt's error.
	LastError string `json:"lastError,omitempty"`
	// NextRetryAt is when the next attempt is due, while a failed delivery waits; zero otherwise.
	NextRetryAt time.Time `json:"-"`
	// DeliveredAt is when it was delivered (or resolved); zero until then.
	DeliveredAt time.Time `json:"-"`
	// Resolution is how a human resolved it, if one did.
	Resolution string `json:"resolution,omitempty"`
}

// UnmarshalJSON reads the delivery, its times as RFC 3339 strings or epoch milliseconds.
func (d *Delivery) UnmarshalJSON(b []byte) error {
	type plain Delivery
	aux := struct {
		*plain
		NextRetryAt jsonTime `json:"nextRetryAt"`
		DeliveredAt jsonTime `json:"deliveredAt"`
	}{plain: (*plain)(d)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	d.NextRetryAt, d.DeliveredAt = aux.NextRetryAt.Time, aux.DeliveredAt.Time
	return nil
}

// Deliveries is a message's status and each consumer's delivery.
type Deliveries struct {
	// Xid is the message's id.
	Xid string `json:"xid"`
	// App is the producer.
	App string `json:"app"`
	// Name is the message's name.
	Name string `json:"name"`
	// Status is PREPARED, SUBMITTED, DELIVERED or DISCARDED.
	Status Status `json:"status"`
	// PreparedAt is when it was prepared.
	PreparedAt time.Time `json:"-"`
	// CheckBackAt is, while prepared, when the check-back is (or was) due.
	CheckBackAt time.Time `json:"-"`
	// Decision is its submit or discard.
	Decision *Decision `json:"decision,omitempty"`
	// CompletedAt is when it became DELIVERED or DISCARDED; zero until then.
	CompletedAt time.Time `json:"-"`
	// Deliveries are the consumers' deliveries.
	Deliveries []Delivery `json:"deliveries"`
}

// UnmarshalJSON reads the deliveries, their times as RFC 3339 strings or epoch milliseconds.
func (d *Deliveries) UnmarshalJSON(b []byte) error {
	type plain Deliveries
	aux := struct {
		*plain
		PreparedAt  jsonTime `json:"preparedAt"`
		CheckBackAt jsonTime `json:"checkBackAt"`
		CompletedAt jsonTime `json:"completedAt"`
	}{plain: (*plain)(d)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	d.PreparedAt, d.CheckBackAt, d.CompletedAt = aux.PreparedAt.Time, aux.CheckBackAt.Time, aux.CompletedAt.Time
	return nil
}

// ParticipantLink is a REST-TCC participant: a URI to PUT (confirm) or DELETE (cancel) until it expires.
type ParticipantLink struct {
	// URI is the participant's resource.
	URI string `json:"uri"`
	// Expires is when the participant gives its reservation up.
	Expires time.Time `json:"expires"`
}

// jsonTime reads a time sent as an RFC 3339 string or as epoch milliseconds; null or absent is zero.
type jsonTime struct{ time.Time }

// UnmarshalJSON reads an RFC 3339 string, epoch milliseconds or null.
func (t *jsonTime) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		parsed, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("txloop: time %q: %w", s, err)
		}
		t.Time = parsed
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("txloop: time %s is neither a string nor epoch milliseconds", b)
	}
	t.Time = time.UnixMilli(int64(ms))
	return nil
}

// millis turns a duration into whole milliseconds, rounding up (a positive duration is at least 1 ms).
func millis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
