package txloop

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// seen is one request a fake sidecar got.
type seen struct {
	Method, Path, Query, Auth, ContentType string
	Body                                   []byte
}

// fakeSidecar answers each request with the route's function and records what it got.
type fakeSidecar struct {
	mu     sync.Mutex
	got    []seen
	routes map[string]func(w http.ResponseWriter, r *http.Request, body []byte)
	srv    *httptest.Server
}

func newFakeSidecar(t *testing.T) *fakeSidecar {
	t.Helper()
	f := &fakeSidecar{routes: map[string]func(http.ResponseWriter, *http.Request, []byte){}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.got = append(f.got, seen{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: r.Header.Get("authorization"), ContentType: r.Header.Get("content-type"), Body: body})
		route := f.routes[r.Method+" "+r.URL.EscapedPath()]
		f.mu.Unlock()
		if route == nil {
			w.Header().Set("content-type", "application/problem+json")
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"type":"https://txloop.dev/problems/NotFound","title":"Not Found","status":404,"name":"NotFound","detail":"no route"}`))
			return
		}
		route(w, r, body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSidecar) on(route string, fn func(w http.ResponseWriter, r *http.Request, body []byte)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[route] = fn
}

func (f *fakeSidecar) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.got...)
}

func (f *fakeSidecar) client(t *testing.T, opts ...Option) *Client {
	t.Helper()
	c, err := New(append([]Option{WithBaseURL(f.srv.URL + "/")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func answerJSON(status int, v interface{}) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
}

func answerStatus(status int) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) { w.WriteHeader(status) }
}

func problemAnswer(status int, name ErrorName, detail string) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		writeProblem(w, newProblem(status, name, detail, ""))
	}
}

func decodeBody(t *testing.T, b []byte) map[string]interface{} {
	t.Helper()
	var m map[string]interface{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return m
}

func TestNewRefusesABadBaseURLAndReadsATokenFile(t *testing.T) {
	for _, bad := range []string{"127.0.0.1:7480", "ftp://x", "http://", "::"} {
		if _, err := New(WithBaseURL(bad)); err == nil {
			t.Fatalf("WithBaseURL(%q) accepted", bad)
		}
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("  s3cret-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeSidecar(t)
	f.on("GET /healthz", answerJSON(200, map[string]string{"status": "up"}))
	c := f.client(t, WithTokenFile(file))
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.requests()[0].Auth; got != "Bearer s3cret-token-0123456789" {
		t.Fatalf("authorization %q", got)
	}
	if _, err := New(WithTokenFile(filepath.Join(t.TempDir(), "missing"))); err == nil {
		t.Fatal("a missing token file accepted")
	}
	if c, _ := New(); c.BaseURL() != DefaultBaseURL {
		t.Fatalf("default base URL %q", c.BaseURL())
	}
}

func TestBeginSendsItsRequestAndReadsBegun(t *testing.T) {
	f := newFakeSidecar(t)
	deadline := time.Now().Add(10 * time.Second).UnixMilli()
	f.on("POST /v1/transactions", answerJSON(201, map[string]interface{}{
		"xid": "shop.0123456789abcdef", "deadline": deadline,
		"headers": map[string]string{"txloop-xid": "shop.0123456789abcdef", "txloop-deadline": "123"},
	}))
	c := f.client(t, WithToken("tok-0123456789abcdef"))
	tx, err := c.Begin(context.Background(), BeginRequest{Name: "A pays C 30", Timeout: 10*time.Second + 300*time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	if tx.Xid != "shop.0123456789abcdef" || tx.Deadline.UnixMilli() != deadline || tx.Headers["txloop-xid"] != tx.Xid {
		t.Fatalf("begun %+v", tx)
	}
	req := f.requests()[0]
	body := decodeBody(t, req.Body)
	if req.Auth != "Bearer tok-0123456789abcdef" || req.ContentType != "application/json" || body["name"] != "A pays C 30" || body["timeoutMs"] != float64(10001) {
		t.Fatalf("request %+v body %v", req, body)
	}
	h := http.Header{}
	tx.SetHeaders(h)
	if h.Get(HeaderXid) != tx.Xid || h.Get(HeaderDeadline) != "123" {
		t.Fatalf("headers %v", h)
	}
	if _, err := c.Begin(context.Background(), BeginRequest{Name: "x", Timeout: -time.Second}); err == nil {
		t.Fatal("a negative timeout accepted")
	}
}

func TestDecisionsSendTheirReason(t *testing.T) {
	f := newFakeSidecar(t)
	for _, route := range []string{"POST /v1/transactions/shop.0123456789/commit", "POST /v1/transactions/shop.0123456789/rollback",
		"POST /v1/messages/shop.0123456789/submit", "POST /v1/messages/shop.0123456789/discard"} {
		f.on(route, answerStatus(204))
	}
	c := f.client(t)
	ctx := context.Background()
	if err := c.Commit(ctx, "shop.0123456789"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rollback(ctx, "shop.0123456789", Reason(strings.Repeat("é", 600))); err != nil {
		t.Fatal(err)
	}
	if err := c.SubmitMessage(ctx, "shop.0123456789"); err != nil {
		t.Fatal(err)
	}
	if err := c.DiscardMessage(ctx, "shop.0123456789", Reason("local transaction failed")); err != nil {
		t.Fatal(err)
	}
	got := f.requests()
	if string(got[0].Body) != "{}" || got[0].ContentType != "application/json" || string(got[2].Body) != "{}" {
		t.Fatalf("a decision without a reason sent %q (%s), not {}", got[0].Body, got[0].ContentType)
	}
	if reason := decodeBody(t, got[1].Body)["reason"].(string); len(reason) != 1000 {
		t.Fatalf("the reason is not cut to 1000 bytes: %d", len(reason))
	}
	if decodeBody(t, got[3].Body)["reason"] != "local transaction failed" {
		t.Fatalf("discard body %s", got[3].Body)
	}
}

const transactionJSON = `{"xid":"shop.0123456789","app":"shop","mode":"tcc","name":"A pays C","status":"COMMITTED",
	"createdAt":"2026-12-01T20:00:00.000Z","deadline":"2026-12-01T20:00:10.000Z","completedAt":"2026-12-01T20:00:01.250Z",
	"decision":{"outcome":"commit","by":"commit","at":1764619200500,"writeId":"w1"},"heuristic":false,
	"branches":[{"branchId":"b1","owner":"bank","resource":"debit","tryState":"SUCCEEDED","action":"confirm","state":"DONE","attempts":2,"lastError":"boom"}]}`

func TestGetListAndWaitReadTransactions(t *testing.T) {
	f := newFakeSidecar(t)
	f.on("GET /v1/transactions/shop.0123456789", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("content-type", "application/json")
		_, _ = w.Write([]byte(transactionJSON))
	})
	f.on("GET /v1/transactions", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		_, _ = w.Write([]byte(`{"items":[` + transactionJSON + `]}`))
	})
	c := f.client(t)
	tx, err := c.Get(context.Background(), "shop.0123456789")
	if err != nil {
		t.Fatal(err)
	}
	if tx.Status != StatusCommitted || !tx.Status.Finished() || tx.Mode != "tcc" || tx.Decision == nil || tx.Decision.Outcome != "commit" ||
		tx.Decision.At.UnixMilli() != 1764619200500 || tx.CreatedAt.IsZero() || tx.Deadline.Sub(tx.CreatedAt) != 10*time.Second ||
		tx.CompletedAt.Sub(tx.CreatedAt) != 1250*time.Millisecond {
		t.Fatalf("transaction %+v", tx)
	}
	if len(tx.Branches) != 1 || tx.Branches[0].Attempts != 2 || tx.Branches[0].TryState != TryStateSucceeded || tx.Branches[0].Action != ActionConfirm {
		t.Fatalf("branches %+v", tx.Branches)
	}
	items, err := c.List(context.Background(), ListOptions{App: "bank", Statuses: []Status{StatusTrying, StatusCommitting}})
	if err != nil || len(items) != 1 || items[0].Xid != "shop.0123456789" {
		t.Fatalf("list %v %v", items, err)
	}
	if q := f.requests()[1].Query; q != "app=bank&status=TRYING%2CCOMMITTING" {
		t.Fatalf("query %q", q)
	}
	if StatusTrying.Finished() || StatusPrepared.Finished() {
		t.Fatal("an unfinished status is finished")
	}
}

func TestWaitForCompletionAsksAgainUntilItFinishes(t *testing.T) {
	f := newFakeSidecar(t)
	var mu sync.Mutex
	waits := 0
	f.on("POST /v1/transactions/shop.0123456789/wait", func(w http.ResponseWriter, r *http.Request, body []byte) {
		mu.Lock()
		waits++
		n := waits
		mu.Unlock()
		if n < 3 {
			problemAnswer(409, ErrDeadlineExceeded, "transaction shop.0123456789 still COMMITTING after waiting 600000ms")(w, r, body)
			return
		}
		_, _ = w.Write([]byte(transactionJSON))
	})
	c := f.client(t)
	tx, err := c.WaitForCompletion(context.Background(), "shop.0123456789")
	if err != nil || tx.Status != StatusCommitted {
		t.Fatalf("%v %v", tx, err)
	}
	got := f.requests()
	if len(got) != 3 || decodeBody(t, got[0].Body)["timeoutMs"] != float64(600000) {
		t.Fatalf("requests %+v", got)
	}

	// With a deadline on ctx: the sidecar is asked for no longer than what is left, and its
	// DeadlineExceeded ends the wait once ctx has no time left.
	f2 := newFakeSidecar(t)
	f2.on("POST /v1/transactions/shop.0123456789/wait", func(w http.ResponseWriter, r *http.Request, body []byte) {
		var req struct{ TimeoutMs int64 }
		_ = json.Unmarshal(body, &req)
		time.Sleep(time.Duration(req.TimeoutMs) * time.Millisecond)
		problemAnswer(409, ErrDeadlineExceeded, "still COMMITTING")(w, r, body)
	})
	c2 := f2.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = c2.WaitForCompletion(ctx, "shop.0123456789")
	if !errors.Is(err, ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	first := decodeBody(t, f2.requests()[0].Body)["timeoutMs"].(float64)
	if first > 300 || first < 200 {
		t.Fatalf("asked the sidecar for %vms with 300ms left", first)
	}
}

func TestRunTransactionCommitsOrRollsBack(t *testing.T) {
	f := newFakeSidecar(t)
	f.on("POST /v1/transactions", answerJSON(201, map[string]interface{}{"xid": "shop.0123456789", "deadline": time.Now().Add(time.Minute).UnixMilli(), "headers": map[string]string{}}))
	f.on("POST /v1/transactions/shop.0123456789/commit", answerStatus(204))
	f.on("POST /v1/transactions/shop.0123456789/rollback", answerStatus(204))
	c := f.client(t)
	xid, err := c.RunTransaction(context.Background(), BeginRequest{Name: "ok"}, func(ctx context.Context, tx *Begun) error {
		if dl, ok := ctx.Deadline(); !ok || !dl.Equal(tx.Deadline) {
			t.Errorf("fn's ctx does not end at the deadline: %v", dl)
		}
		return nil
	})
	if err != nil || xid != "shop.0123456789" {
		t.Fatalf("%q %v", xid, err)
	}
	declined := errors.New("card declined")
	_, err = c.RunTransaction(context.Background(), BeginRequest{Name: "fails"}, func(context.Context, *Begun) error { return declined })
	if !errors.Is(err, declined) {
		t.Fatalf("got %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not go on")
			}
		}()
		_, _ = c.RunTransaction(context.Background(), BeginRequest{Name: "panics"}, func(context.Context, *Begun) error { panic("boom") })
	}()
	// A commit refused (a Try not prepared): rolled back rather than left to the deadline.
	f.on("POST /v1/transactions/shop.0123456789/commit", problemAnswer(409, ErrBranchesNotPrepared, "b1 not prepared"))
	_, err = c.RunTransaction(context.Background(), BeginRequest{Name: "unprepared"}, func(context.Context, *Begun) error { return nil })
	if !errors.Is(err, ErrBranchesNotPrepared) {
		t.Fatalf("got %v", err)
	}
	var paths []string
	for _, r := range f.requests() {
		paths = append(paths, r.Path[strings.LastIndexByte(r.Path, '/')+1:])
		if strings.HasSuffix(r.Path, "/rollback") && !strings.HasPrefix(decodeBody(t, r.Body)["reason"].(string), "aborted: ") &&
			!strings.HasPrefix(decodeBody(t, r.Body)["reason"].(string), "commit failed: ") {
			t.Errorf("rollback reason %s", r.Body)
		}
	}
	want := "transactions commit transactions rollback transactions rollback transactions commit rollback"
	if strings.Join(paths, " ") != want {
		t.Fatalf("calls %q, want %q", strings.Join(paths, " "), want)
	}
}

func TestSagaAndMessageBodies(t *testing.T) {
	f := newFakeSidecar(t)
	f.on("POST /v1/sagas", answerJSON(201, map[string]interface{}{"xid": "shop.0123456789", "deadline": 1764619200000}))
	f.on("POST /v1/messages", answerJSON(201, map[string]interface{}{"xid": "shop.abcdefghij", "checkBackAt": 1764619210000}))
	f.on("POST /v1/messages/shop.abcdefghij/submit", answerStatus(204))
	f.on("POST /v1/messages/shop.abcdefghij/discard", answerStatus(204))
	f.on("GET /v1/messages/shop.abcdefghij/deliveries", func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		_, _ = w.Write([]byte(`{"xid":"shop.abcdefghij","app":"shop","name":"order paid","status":"DELIVERED","preparedAt":"2026-12-01T20:00:00.000Z",
			"completedAt":"2026-12-01T20:00:02.000Z","deliveries":[{"service":"bank","resource":"receipt","branchId":"c1","status":"DELIVERED","attempts":1,"deliveredAt":"2026-12-01T20:00:01.000Z"}]}`))
	})
	c := f.client(t)
	ctx := context.Background()
	step := func(service, resource string) SagaStep { return SagaStep{Service: service, Resource: resource} }
	s, err := c.Saga(ctx, SagaRequest{Name: "checkout", Timeout: time.Minute, Steps: []SagaGroup{
		{{Service: "order", Resource: "create", Payload: map[string]int{"order": 42}}},
		{step("inventory", "reserve"), step("shipping", "book")},
	}})
	if err != nil || s.Xid != "shop.0123456789" || s.Deadline.UnixMilli() != 1764619200000 {
		t.Fatalf("%+v %v", s, err)
	}
	want := `{"name":"checkout","steps":[{"service":"order","resource":"create","payload":{"order":42}},[{"service":"inventory","resource":"reserve"},{"service":"shipping","resource":"book"}]],"timeoutMs":60000}`
	if got := string(f.requests()[0].Body); got != want {
		t.Fatalf("saga body\n got %s\nwant %s", got, want)
	}
	xid, err := c.RunMessage(ctx, MessageRequest{Name: "order paid", CheckAfter: 2 * time.Second, Consumers: []MessageConsumer{{Service: "bank", Resource: "receipt", Payload: map[string]int{"order": 42}}}},
		func(ctx context.Context, m *PreparedMessage) error {
			if m.CheckBackAt.UnixMilli() != 1764619210000 {
				t.Errorf("checkBackAt %v", m.CheckBackAt)
			}
			return nil
		})
	if err != nil || xid != "shop.abcdefghij" {
		t.Fatalf("%q %v", xid, err)
	}
	if got := string(f.requests()[1].Body); got != `{"checkAfterMs":2000,"consumers":[{"service":"bank","resource":"receipt","payload":{"order":42}}],"name":"order paid"}` {
		t.Fatalf("message body %s", got)
	}
	failed := errors.New("insert failed")
	if _, err := c.RunMessage(ctx, MessageRequest{Name: "order paid"}, func(context.Context, *PreparedMessage) error { return failed }); !errors.Is(err, failed) {
		t.Fatalf("got %v", err)
	}
	got := f.requests()
	if !strings.HasSuffix(got[2].Path, "/submit") || !strings.HasSuffix(got[4].Path, "/discard") {
		t.Fatalf("requests %+v", got)
	}
	d, err := c.Deliveries(ctx, "shop.abcdefghij")
	if err != nil || d.Status != StatusDelivered || len(d.Deliveries) != 1 || d.Deliveries[0].DeliveredAt.Sub(d.PreparedAt) != time.Second || !d.CheckBackAt.IsZero() {
		t.Fatalf("%+v %v", d, err)
	}
}

func TestEveryOperationGoesWhereTheContractSays(t *testing.T) {
	f := newFakeSidecar(t)
	c := f.client(t)
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	link := []ParticipantLink{{URI: "http://127.0.0.1:1/tcc/1", Expires: deadline}}
	// The fake answers 404 for every route: only the method and path matter here.
	_ = c.Ready(ctx)
	_, _ = c.Register(ctx, RegisterRequest{Xid: "bank.0123456789", Deadline: deadline, Resource: "debit"})
	_ = c.Report(ctx, "bank.0123456789", "b/1", nil)
	_, _ = c.Try(ctx, RegisterRequest{Xid: "bank.0123456789", Deadline: deadline, Resource: "debit"})
	_ = c.ConfirmParticipants(ctx, link)
	_ = c.CancelParticipants(ctx, nil)
	var got []string
	for _, r := range f.requests() {
		got = append(got, r.Method+" "+r.Path)
	}
	want := []string{"GET /readyz", "POST /v1/branches", "POST /v1/branches/bank.0123456789/b%2F1/report", "POST /v1/tries", "PUT /coordinator/confirm", "PUT /coordinator/cancel"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("routes\n got %v\nwant %v", got, want)
	}
	if body := string(f.requests()[5].Body); body != `{"participantLinks":[]}` {
		t.Fatalf("cancel body %s", body)
	}
	if _, err := c.Register(ctx, RegisterRequest{Xid: "bank.0123456789", Resource: "debit"}); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("a register without a deadline: %v", err)
	}
}
