package txloop_test

// Integration tests: the client against a real etcd and two real sidecars. "shop" initiates (and
// answers its messages' check-backs); "bank" is a participant with a bearer token, whose service
// is the Go code below: its Try behind Client.Participant, its phase 2 behind CallbackHandler.
// Skipped with -short; otherwise they need etcd, node and the Node build (npm run build).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	txloop "github.com/txloop/txloop/clients/go"
)

const bankToken = "go-client-test-token-0123456789"

// leg is the payload of the bank's Try, and of its branches' phase 2.
type leg struct {
	Account         string `json:"account"`
	Amount          int    `json:"amount"`
	FailConfirmOnce bool   `json:"failConfirmOnce,omitempty"`
	Decline         bool   `json:"decline,omitempty"`
}

// bankService is the Go service beside the bank sidecar: it records every call it gets.
type bankService struct {
	mu    sync.Mutex
	tries map[string]int                    // xid → Trys run
	calls map[string][]*txloop.Callback     // path → callbacks, in order
	check map[string]txloop.CheckBackAnswer // xid → the shop's check-back answer
}

func (b *bankService) record(path string, cb *txloop.Callback) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls[path] = append(b.calls[path], cb)
}

// of returns the callbacks at path for xid.
func (b *bankService) of(path, xid string) []*txloop.Callback {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*txloop.Callback
	for _, cb := range b.calls[path] {
		if cb.Xid == xid {
			out = append(out, cb)
		}
	}
	return out
}

func (b *bankService) triesOf(xid string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tries[xid]
}

type integrationEnv struct {
	shop, bank *txloop.Client
	bankURL    string // the Go bank service (its Try route)
	svc        *bankService
}

var (
	envOnce sync.Once
	env     *integrationEnv
	envErr  error
)

// integration returns the shared environment, started on first use; -short skips.
func integration(t *testing.T) *integrationEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (etcd + txloop sidecar): not with -short")
	}
	envOnce.Do(func() { env, envErr = startIntegration() })
	if envErr != nil {
		t.Fatalf("the integration environment did not start: %v", envErr)
	}
	return env
}

func startIntegration() (*integrationEnv, error) {
	dir, err := os.MkdirTemp("", "txloop-go-client-")
	if err != nil {
		return nil, err
	}
	tempDir = dir
	endpoint, err := startEtcd(dir)
	if err != nil {
		return nil, err
	}
	namespace := fmt.Sprintf("go-client-%d/", time.Now().UnixNano())
	svc := &bankService{tries: map[string]int{}, calls: map[string][]*txloop.Callback{}, check: map[string]txloop.CheckBackAnswer{}}

	// The services listen before their sidecars start (the sidecars need their URLs); their
	// handlers need the sidecars' clients, set once those are up.
	bankMux := http.NewServeMux()
	bankSrv := httptest.NewServer(bankMux)
	shopMux := http.NewServeMux()
	shopSrv := httptest.NewServer(shopMux)

	bankURL, err := startSidecar(dir, sidecarSpec{app: "bank", endpoint: endpoint, namespace: namespace, serviceURL: bankSrv.URL, token: bankToken,
		resources: map[string]interface{}{"resources": map[string]interface{}{
			"debit":   map[string]string{"try": "/debit/try", "confirm": "/debit/confirm", "cancel": "/debit/cancel"},
			"reserve": map[string]string{"action": "/reserve/action", "compensate": "/reserve/compensate"},
			"charge":  map[string]string{"action": "/charge/action", "compensate": "/charge/compensate"},
			"receipt": map[string]string{"deliver": "/receipt/deliver"},
		}}})
	if err != nil {
		return nil, err
	}
	shopURL, err := startSidecar(dir, sidecarSpec{app: "shop", endpoint: endpoint, namespace: namespace, serviceURL: shopSrv.URL,
		resources: map[string]interface{}{"resources": map[string]interface{}{}, "checkBacks": map[string]string{"order paid": "/checkback/order-paid"}}})
	if err != nil {
		return nil, err
	}
	bank, err := txloop.New(txloop.WithBaseURL(bankURL), txloop.WithToken(bankToken))
	if err != nil {
		return nil, err
	}
	shop, err := txloop.New(txloop.WithBaseURL(shopURL))
	if err != nil {
		return nil, err
	}

	// The bank's Try: freezes up to 100 per account; more is refused (the Try fails).
	bankMux.Handle("/debit/try", bank.Participant("debit", &txloop.ParticipantOptions{Token: bankToken})(txloop.TryFunc(func(w http.ResponseWriter, r *http.Request) error {
		tc, _ := txloop.TryFromContext(r.Context())
		svc.mu.Lock()
		svc.tries[tc.Xid]++
		svc.mu.Unlock()
		var l leg
		if err := json.NewDecoder(r.Body).Decode(&l); err != nil {
			return fmt.Errorf("not a leg: %v", err)
		}
		if l.Amount > 100 {
			return fmt.Errorf("insufficient funds in %s for %d", l.Account, l.Amount)
		}
		w.Header().Set("content-type", "application/json")
		return json.NewEncoder(w).Encode(map[string]interface{}{"frozen": l.Amount, "branchId": tc.BranchID, "viaSidecar": tc.ViaSidecar})
	})))
	opts := &txloop.HandlerOptions{Token: bankToken}
	handle := func(path string, fn func(cb *txloop.Callback, l leg) error) {
		bankMux.Handle(path, txloop.CallbackHandler(txloop.TypedCallback(func(ctx context.Context, cb *txloop.Callback, l leg) error {
			svc.record(path, cb)
			return fn(cb, l)
		}), opts))
	}
	handle("/debit/confirm", func(cb *txloop.Callback, l leg) error {
		if l.FailConfirmOnce && cb.Attempt == 1 {
			return errors.New("ledger busy, try again")
		}
		return nil
	})
	handle("/debit/cancel", func(*txloop.Callback, leg) error { return nil })
	handle("/reserve/action", func(*txloop.Callback, leg) error { return nil })
	handle("/reserve/compensate", func(*txloop.Callback, leg) error { return nil })
	handle("/charge/action", func(_ *txloop.Callback, l leg) error {
		if l.Decline {
			return txloop.NonRetryablef("card declined for %d", l.Amount)
		}
		return nil
	})
	handle("/charge/compensate", func(cb *txloop.Callback, _ leg) error {
		if cb.TryState == txloop.TryStateFailed {
			return fmt.Errorf("nothing was charged: %w", txloop.ErrGone)
		}
		return nil
	})
	handle("/receipt/deliver", func(*txloop.Callback, leg) error { return nil })
	shopMux.Handle("/checkback/order-paid", txloop.CheckBackHandler(func(ctx context.Context, cb *txloop.CheckBack) (txloop.CheckBackAnswer, error) {
		svc.mu.Lock()
		defer svc.mu.Unlock()
		if a, ok := svc.check[cb.Xid]; ok {
			return a, nil
		}
		return txloop.AnswerUnknown, nil
	}, nil))

	// Both sidecars ready (etcd reachable, first list done) before any test.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []*txloop.Client{bank, shop} {
		for {
			err := c.Ready(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("sidecar %s not ready: %v", c.BaseURL(), err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return &integrationEnv{shop: shop, bank: bank, bankURL: bankSrv.URL, svc: svc}, nil
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// callTry calls the bank service's Try as an initiator does: the transaction's headers, a JSON body.
func (e *integrationEnv) callTry(ctx context.Context, tx *txloop.Begun, l leg) (int, string, error) {
	body, _ := json.Marshal(l)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.bankURL+"/debit/try", strings.NewReader(string(body)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("content-type", "application/json")
	tx.SetHeaders(req.Header)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), nil
}

func (e *integrationEnv) mustTry(ctx context.Context, t *testing.T, tx *txloop.Begun, l leg) {
	t.Helper()
	status, body, err := e.callTry(ctx, tx, l)
	if err != nil || status != 200 {
		t.Fatalf("the Try answered %d %s %v", status, body, err)
	}
}

func waitFinished(ctx context.Context, t *testing.T, c *txloop.Client, xid string, want txloop.Status) *txloop.Transaction {
	t.Helper()
	tx, err := c.WaitForCompletion(ctx, xid)
	if err != nil {
		t.Fatalf("waiting for %s: %v", xid, err)
	}
	if tx.Status != want {
		t.Fatalf("%s finished %s, want %s: %+v", xid, tx.Status, want, tx)
	}
	return tx
}

func TestIntegrationCommit(t *testing.T) {
	e := integration(t)
	ctx := testContext(t)
	xid, err := e.shop.RunTransaction(ctx, txloop.BeginRequest{Name: "A and B pay 30 and 50", Timeout: 20 * time.Second}, func(ctx context.Context, tx *txloop.Begun) error {
		e.mustTry(ctx, t, tx, leg{Account: "a", Amount: 30})
		e.mustTry(ctx, t, tx, leg{Account: "b", Amount: 50})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tx := waitFinished(ctx, t, e.shop, xid, txloop.StatusCommitted)
	if tx.Mode != "tcc" || tx.App != "shop" || tx.Decision == nil || tx.Decision.Outcome != "commit" || len(tx.Branches) != 2 {
		t.Fatalf("transaction %+v", tx)
	}
	confirms := e.svc.of("/debit/confirm", xid)
	if len(confirms) != 2 {
		t.Fatalf("%d confirms", len(confirms))
	}
	amounts := map[string]int{}
	for _, cb := range confirms {
		var l leg
		if err := cb.DecodePayload(&l); err != nil {
			t.Fatal(err)
		}
		amounts[l.Account] = l.Amount
		if cb.Action != txloop.ActionConfirm || cb.TryState != txloop.TryStateSucceeded || cb.Attempt != 1 || cb.FencingToken == "" ||
			cb.IdempotencyKey != xid+"/"+cb.BranchID+"/confirm" || cb.Resource != "debit" {
			t.Fatalf("confirm %+v", cb)
		}
	}
	if amounts["a"] != 30 || amounts["b"] != 50 {
		t.Fatalf("confirmed payloads %v", amounts)
	}
	for _, b := range tx.Branches {
		if b.Owner != "bank" || b.TryState != txloop.TryStateSucceeded || b.State != "DONE" || b.Action != txloop.ActionConfirm {
			t.Fatalf("branch %+v", b)
		}
	}
	if len(e.svc.of("/debit/cancel", xid)) != 0 {
		t.Fatal("a committed branch was cancelled")
	}
}

func TestIntegrationRollback(t *testing.T) {
	e := integration(t)
	ctx := testContext(t)
	tx, err := e.shop.Begin(ctx, txloop.BeginRequest{Name: "rolled back", Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.mustTry(ctx, t, tx, leg{Account: "a", Amount: 10})
	if err := e.shop.Rollback(ctx, tx.Xid, txloop.Reason("the customer cancelled")); err != nil {
		t.Fatal(err)
	}
	got := waitFinished(ctx, t, e.shop, tx.Xid, txloop.StatusRolledBack)
	if got.Decision == nil || got.Decision.Outcome != "rollback" || got.Decision.Reason != "the customer cancelled" {
		t.Fatalf("decision %+v", got.Decision)
	}
	cancels := e.svc.of("/debit/cancel", tx.Xid)
	if len(cancels) != 1 || cancels[0].TryState != txloop.TryStateSucceeded || cancels[0].Action != txloop.ActionCancel {
		t.Fatalf("cancels %+v", cancels)
	}
	// One decision: a commit now is refused, with the outcome that won.
	err = e.shop.Commit(ctx, tx.Xid)
	p, ok := txloop.AsProblem(err)
	if !ok || p.Name != txloop.ErrTransactionAlreadyDecided || p.Status != 409 || p.Outcome != "rollback" || p.Xid != tx.Xid || p.TransactionStatus != "ROLLED_BACK" {
		t.Fatalf("commit after rollback: %#v", err)
	}
}

func TestIntegrationFailedTry(t *testing.T) {
	e := integration(t)
	ctx := testContext(t)
	var tryStatus int
	var tryBody string
	xid, err := e.shop.RunTransaction(ctx, txloop.BeginRequest{Name: "B lacks funds", Timeout: 20 * time.Second}, func(ctx context.Context, tx *txloop.Begun) error {
		e.mustTry(ctx, t, tx, leg{Account: "a", Amount: 40})
		status, body, err := e.callTry(ctx, tx, leg{Account: "b", Amount: 600})
		if err != nil {
			return err
		}
		tryStatus, tryBody = status, body
		if status != 200 {
			return fmt.Errorf("b's Try answered %d", status)
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "answered 424") {
		t.Fatalf("RunTransaction: %v", err)
	}
	var problem txloop.Problem
	if err := json.Unmarshal([]byte(tryBody), &problem); err != nil || tryStatus != 424 || problem.Name != txloop.ErrTryFailed || !strings.Contains(problem.Detail, "insufficient funds") {
		t.Fatalf("the failed Try's answer: %d %s", tryStatus, tryBody)
	}
	tx := waitFinished(ctx, t, e.shop, xid, txloop.StatusRolledBack)
	states := map[txloop.TryState]int{}
	for _, b := range tx.Branches {
		states[b.TryState]++
	}
	if states[txloop.TryStateSucceeded] != 1 || states[txloop.TryStateFailed] != 1 {
		t.Fatalf("branches %+v", tx.Branches)
	}
	cancels := map[txloop.TryState]int{}
	for _, cb := range e.svc.of("/debit/cancel", xid) {
		cancels[cb.TryState]++
	}
	if cancels[txloop.TryStateSucceeded] != 1 || cancels[txloop.TryStateFailed] != 1 {
		t.Fatalf("cancels by try state %v", cancels)
	}
}

func TestIntegrationAntiHanging(t *testing.T) {
	e := integration(t)
	ctx := testContext(t)
	tx, err := e.shop.Begin(ctx, txloop.BeginRequest{Name: "rolled back before its Try", Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.shop.Rollback(ctx, tx.Xid); err != nil {
		t.Fatal(err)
	}
	// The Try arrives late, through the middleware: refused before the handler runs.
	status, body, err := e.callTry(ctx, tx, leg{Account: "a", Amount: 10})
	if err != nil {
		t.Fatal(err)
	}
	var problem txloop.Problem
	_ = json.Unmarshal([]byte(body), &problem)
	if status != 409 || problem.Name != txloop.ErrBranchRegistrationRefused || problem.Xid != tx.Xid {
		t.Fatalf("the late Try answered %d %s", status, body)
	}
	if n := e.svc.triesOf(tx.Xid); n != 0 {
		t.Fatalf("the Try ran %d times after the rollback", n)
	}
	// And through the client's own Register.
	_, err = e.bank.Register(ctx, txloop.RegisterRequest{Xid: tx.Xid, Deadline: tx.Deadline, Resource: "debit", Payload: leg{Account: "a", Amount: 10}})
	if !errors.Is(err, txloop.ErrBranchRegistrationRefused) || !txloop.IsRegistrationRefused(err) {
		t.Fatalf("register after rollback: %v", err)
	}
	waitFinished(ctx, t, e.shop, tx.Xid, txloop.StatusRolledBack)
}

func TestIntegrationConfirmFailsThenSucceeds(t *testing.T) {
	e := integration(t)
	ctx := testContext(t)
	xid, err := e.shop.RunTransaction(ctx, txloop.BeginRequest{Name: "confirm retried", Timeout: 20 * time.Second}, func(ctx context.Context, tx *txloop.Begun) error {
		e.mustTry(ctx, t, tx, leg{Account: "a", Amount: 5, FailConfirmOnce: true})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tx := waitFinished(ctx, t, e.shop, xid, txloop.StatusCommitted)
	confirms := e.svc.of("/debit/confirm", xid)
	if len(confirms) != 2 || confirms[0].Attempt != 1 || confirms[1].Attempt != 2 || confirms[0].BranchID != confirms[1].BranchID ||
		confirms[0].IdempotencyKey != confirms[1].IdempotencyKey {
		t.Fatalf("confirms %+v", confirms)
	}
	if txloop.CompareFencing(confirms[0].FencingToken, confirms[0].Attempt, confirms[1].FencingToken, confirms[1].Attempt) >= 0 {
		t.Fatalf("the retry does not fence the first attempt: %s/%d then %s/%d", confirms[0].FencingToken, confirms[0].Attempt, confirms[1].FencingToken, confirms[1].Attempt)
	}
	if b := tx.Branches[0]; b.Attempts != 2 || b.State != "DONE" {
		t.Fatalf("branch %+v", b)
	}
}

func TestIntegrationTryThroughTheSidecar(t *testing.T) {
	e := integration(t)
	ctx := testContext(t)
	tx, err := e.shop.Begin(ctx, txloop.BeginRequest{Name: "Try via POST /v1/tries", Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.bank.Try(ctx, txloop.RegisterRequest{Xid: tx.Xid, Deadline: tx.Deadline, Resource: "debit", Payload: leg{Account: "c", Amount: 20}, BranchID: "order-42"})
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Frozen     int    `json:"frozen"`
		BranchID   string `json:"branchId"`
		ViaSidecar bool   `json:"viaSidecar"`
	}
	if err := json.Unmarshal(res.Result, &answer); err != nil || res.BranchID != "order-42" || res.Replayed || answer.Frozen != 20 || answer.BranchID != "order-42" || !answer.ViaSidecar {
		t.Fatalf("try %+v %s %v", res, res.Result, err)
	}
	// Retried with the same branch id: the Try does not run again.
	again, err := e.bank.Try(ctx, txloop.RegisterRequest{Xid: tx.Xid, Deadline: tx.Deadline, Resource: "debit", Payload: leg{Account: "c", Amount: 20}, BranchID: "order-42"})
	if err != nil || !again.Replayed || len(again.Result) != 0 || e.svc.triesOf(tx.Xid) != 1 {
		t.Fatalf("replay %+v %v (tries %d)", again, err, e.svc.triesOf(tx.Xid))
	}
	// A Try the service's path refuses: TryFailed, carrying the branch.
	_, err = e.bank.Try(ctx, txloop.RegisterRequest{Xid: tx.Xid, Deadline: tx.Deadline, Resource: "debit", Payload: leg{Account: "c", Amount: 500}})
	p, ok := txloop.AsProblem(err)
	if !ok || p.Name != txloop.ErrTryFailed || p.Status != 424 || p.Xid != tx.Xid || p.BranchID == "" || p.Resource != "debit" || !strings.Contains(p.Detail, "insufficient funds") {
		t.Fatalf("a failed Try: %#v", err)
	}
	if err := e.shop.Rollback(ctx, tx.Xid); err != nil {
		t.Fatal(err)
	}
	waitFinished(ctx, t, e.shop, tx.Xid, txloop.StatusRolledBack)
}

func TestIntegrationSagaCompensates(t *testing.T) {
	e := integration(t)
	ctx := testContext(t)
	s, err := e.shop.Saga(ctx, txloop.SagaRequest{Name: "checkout 42", Timeout: 20 * time.Second, Steps: []txloop.SagaGroup{
		{{Service: "bank", Resource: "reserve", Payload: leg{Account: "a", Amount: 7}}},
		{{Service: "bank", Resource: "charge", Payload: leg{Account: "a", Amount: 7, Decline: true}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tx := waitFinished(ctx, t, e.shop, s.Xid, txloop.StatusCompensated)
	if tx.Mode != "saga" || len(tx.Steps) != 2 || tx.Steps[0].Resource != "reserve" || tx.Steps[1].Resource != "charge" ||
		tx.Steps[0].Owner != "bank" || tx.Steps[0].Group >= tx.Steps[1].Group || tx.Steps[0].BranchID == "" {
		t.Fatalf("saga %+v", tx)
	}
	if n := len(e.svc.of("/charge/action", s.Xid)); n != 1 {
		t.Fatalf("a declined charge (409) ran %d times", n)
	}
	comp := e.svc.of("/reserve/compensate", s.Xid)
	if len(comp) != 1 || comp[0].TryState != txloop.TryStateSucceeded || comp[0].Action != txloop.ActionCompensate {
		t.Fatalf("reserve compensations %+v", comp)
	}
}

func TestIntegrationSagaSucceeds(t *testing.T) {
	e := integration(t)
	ctx := testContext(t)
	s, err := e.shop.Saga(ctx, txloop.SagaRequest{Name: "checkout 43", Steps: []txloop.SagaGroup{
		{{Service: "bank", Resource: "reserve", Payload: leg{Account: "a", Amount: 1}}, {Service: "bank", Resource: "charge", Payload: leg{Account: "a", Amount: 1}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tx := waitFinished(ctx, t, e.shop, s.Xid, txloop.StatusSucceeded)
	if len(tx.Steps) != 2 || tx.Steps[0].Group != tx.Steps[1].Group {
		t.Fatalf("a group of two: %+v", tx.Steps)
	}
	if len(e.svc.of("/reserve/action", s.Xid)) != 1 || len(e.svc.of("/charge/action", s.Xid)) != 1 || len(e.svc.of("/reserve/compensate", s.Xid)) != 0 {
		t.Fatal("a group of two did not run each action once")
	}
}

func TestIntegrationMessageDelivered(t *testing.T) {
	e := integration(t)
	ctx := testContext(t)
	xid, err := e.shop.RunMessage(ctx, txloop.MessageRequest{Name: "order paid", Consumers: []txloop.MessageConsumer{{Service: "bank", Resource: "receipt", Payload: leg{Account: "a", Amount: 3}}}},
		func(ctx context.Context, m *txloop.PreparedMessage) error { return nil }) // the local transaction committed
	if err != nil {
		t.Fatal(err)
	}
	waitFinished(ctx, t, e.shop, xid, txloop.StatusDelivered)
	d, err := e.bank.Deliveries(ctx, xid)
	if err != nil || d.Status != txloop.StatusDelivered || d.Name != "order paid" || len(d.Deliveries) != 1 || d.Deliveries[0].Status != "DELIVERED" || d.Deliveries[0].DeliveredAt.IsZero() {
		t.Fatalf("deliveries %+v %v", d, err)
	}
	if got := e.svc.of("/receipt/deliver", xid); len(got) != 1 || got[0].Action != txloop.ActionDeliver {
		t.Fatalf("deliveries %+v", got)
	}
	// One decision: a discard after the submit is refused.
	if err := e.shop.DiscardMessage(ctx, xid); !errors.Is(err, txloop.ErrTransactionAlreadyDecided) {
		t.Fatalf("discard after submit: %v", err)
	}
}

func TestIntegrationCheckBackDecidesAPreparedMessage(t *testing.T) {
	e := integration(t)
	ctx := testContext(t)
	// The producer "dies" after its local transaction committed: nobody submits; the check-back does.
	m, err := e.shop.PrepareMessage(ctx, txloop.MessageRequest{Name: "order paid", CheckAfter: 300 * time.Millisecond, Consumers: []txloop.MessageConsumer{{Service: "bank", Resource: "receipt"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.mu.Lock()
	e.svc.check[m.Xid] = txloop.AnswerCommitted
	e.svc.mu.Unlock()
	waitFinished(ctx, t, e.shop, m.Xid, txloop.StatusDelivered)
	// And one whose local transaction rolled back: discarded, nothing delivered.
	m2, err := e.shop.PrepareMessage(ctx, txloop.MessageRequest{Name: "order paid", CheckAfter: 300 * time.Millisecond, Consumers: []txloop.MessageConsumer{{Service: "bank", Resource: "receipt"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.mu.Lock()
	e.svc.check[m2.Xid] = txloop.AnswerRolledBack
	e.svc.mu.Unlock()
	waitFinished(ctx, t, e.shop, m2.Xid, txloop.StatusDiscarded)
	if len(e.svc.of("/receipt/deliver", m2.Xid)) != 0 {
		t.Fatal("a discarded message was delivered")
	}
}

func TestIntegrationProblemsFromTheSidecar(t *testing.T) {
	e := integration(t)
	ctx := testContext(t)
	_, err := e.shop.Get(ctx, "shop.0000000000000000")
	if p, ok := txloop.AsProblem(err); !ok || p.Status != 404 || p.Name != txloop.ErrTransactionNotFound || p.Xid != "shop.0000000000000000" || !txloop.IsNotFound(err) {
		t.Fatalf("get of an unknown xid: %#v", err)
	}
	_, err = e.shop.Begin(ctx, txloop.BeginRequest{Name: ""})
	if p, ok := txloop.AsProblem(err); !ok || p.Status != 422 || p.Name != txloop.ErrValidationError || !strings.Contains(p.Field, "name") {
		t.Fatalf("begin without a name: %#v", err)
	}
	_, err = e.bank.Register(ctx, txloop.RegisterRequest{Xid: "shop.0000000000000000", Deadline: time.Now().Add(time.Minute), Resource: "no-such"})
	if p, ok := txloop.AsProblem(err); !ok || p.Name != txloop.ErrUnknownResource || p.Resource != "no-such" {
		t.Fatalf("register of an unknown resource: %#v", err)
	}
	noToken, _ := txloop.New(txloop.WithBaseURL(e.bank.BaseURL()))
	_, err = noToken.List(ctx, txloop.ListOptions{})
	if p, ok := txloop.AsProblem(err); !ok || p.Status != 401 || p.Name != txloop.ErrUnauthorized {
		t.Fatalf("a call without the token: %#v", err)
	}
	if err := noToken.Health(ctx); err != nil {
		t.Fatalf("/healthz needs no token: %v", err)
	}
	items, err := e.shop.List(ctx, txloop.ListOptions{Statuses: []txloop.Status{txloop.StatusCommitted, txloop.StatusRolledBack}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range items {
		if tx.App != "shop" || (tx.Status != txloop.StatusCommitted && tx.Status != txloop.StatusRolledBack) {
			t.Fatalf("listed %+v", tx)
		}
	}
}

func TestIntegrationRestTCC(t *testing.T) {
	e := integration(t)
	ctx := testContext(t)
	var mu sync.Mutex
	var got []string
	participant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer participant.Close()
	expires := time.Now().Add(time.Minute)
	err := e.shop.ConfirmParticipants(ctx, []txloop.ParticipantLink{{URI: participant.URL + "/tcc/flight-1", Expires: expires}, {URI: participant.URL + "/tcc/hotel-1", Expires: expires}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "PUT /tcc/flight-1,PUT /tcc/hotel-1" && strings.Join(got, ",") != "PUT /tcc/hotel-1,PUT /tcc/flight-1" {
		t.Fatalf("the participants got %v", got)
	}
}
