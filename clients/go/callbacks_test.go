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
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// callback is a request as the sidecar sends one (src/sidecar/callbacks.ts): the body and the headers.
func callback(body string, headers map[string]string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/debit/confirm", strings.NewReader(body))
	req.Header.Set("content-type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

const confirmBody = `{"xid":"shop.0123456789","branchId":"b1","resource":"debit","action":"confirm","payload":{"account":"a","amount":30},"attempt":2,"tryState":"SUCCEEDED","fencingToken":"9007199254740993"}`

var confirmHeaders = map[string]string{
	HeaderXid: "shop.0123456789", HeaderBranchID: "b1", HeaderAttempt: "2", HeaderFencingToken: "9007199254740993",
	HeaderIdempotencyKey: "shop.0123456789/b1/confirm",
}

func TestCallbackStatusMapping(t *testing.T) {
	cases := []struct {
		name   string
		ret    func() error
		status int
		body   string
	}{
		{"done", func() error { return nil }, 204, ""},
		{"refused for good", func() error { return NonRetryable(errors.New("account closed")) }, 409, "account closed"},
		{"refused, wrapped", func() error { return fmt.Errorf("confirm: %w", NonRetryable(errors.New("account closed"))) }, 409, "confirm: account closed"},
		{"nothing left to do", func() error { return fmt.Errorf("already applied: %w", ErrGone) }, 410, "already applied: txloop: nothing left to do"},
		{"failed, retried", func() error { return errors.New("database is down") }, 500, "database is down"},
		{"panicked", func() error { panic("nil map") }, 500, "the handler panicked: nil map"},
	}
	var logged bytes.Buffer
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := CallbackHandler(func(ctx context.Context, cb *Callback) error { return c.ret() }, &HandlerOptions{ErrorLog: log.New(&logged, "", 0)})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, callback(confirmBody, confirmHeaders))
			if rec.Code != c.status || rec.Body.String() != c.body {
				t.Fatalf("answer %d %q, want %d %q", rec.Code, rec.Body.String(), c.status, c.body)
			}
		})
	}
	if !strings.Contains(logged.String(), "callback shop.0123456789/b1/confirm panicked: nil map") {
		t.Fatalf("the panic was not logged: %q", logged.String())
	}
}

func TestCallbackDecodesTheBodyAndTheHeaders(t *testing.T) {
	var got *Callback
	h := CallbackHandler(func(ctx context.Context, cb *Callback) error {
		got = cb
		return nil
	}, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, callback(confirmBody, confirmHeaders))
	if rec.Code != 204 {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
	want := Callback{Xid: "shop.0123456789", BranchID: "b1", Resource: "debit", Action: ActionConfirm, Attempt: 2, TryState: TryStateSucceeded,
		FencingToken: "9007199254740993", IdempotencyKey: "shop.0123456789/b1/confirm"}
	payload := got.Payload
	got.Payload = nil
	if fmt.Sprint(*got) != fmt.Sprint(want) {
		t.Fatalf("callback\n got %+v\nwant %+v", *got, want)
	}
	var leg struct {
		Account string
		Amount  int
	}
	got.Payload = payload
	if err := got.DecodePayload(&leg); err != nil || leg.Account != "a" || leg.Amount != 30 {
		t.Fatalf("payload %+v %v", leg, err)
	}
	// What the body lacks comes from the headers.
	h.ServeHTTP(httptest.NewRecorder(), callback(`{"resource":"debit","payload":null}`, confirmHeaders))
	if got.Xid != "shop.0123456789" || got.BranchID != "b1" || got.Attempt != 2 || got.FencingToken != "9007199254740993" || got.Action != ActionConfirm {
		t.Fatalf("from the headers: %+v", got)
	}
	var none *struct{}
	if err := got.DecodePayload(&none); err != nil || none != nil {
		t.Fatalf("a null payload: %v %v", none, err)
	}
}

func TestCallbackRefusesWhatIsNotACallback(t *testing.T) {
	h := CallbackHandler(func(context.Context, *Callback) error { t.Error("ran"); return nil }, &HandlerOptions{Token: "tok-0123456789abcdef", MaxBodyBytes: 512})
	auth := map[string]string{"authorization": "Bearer tok-0123456789abcdef"}
	cases := []struct {
		name   string
		req    *http.Request
		status int
	}{
		{"GET", httptest.NewRequest(http.MethodGet, "/debit/confirm", nil), 405},
		{"no token", callback(confirmBody, nil), 401},
		{"wrong token", callback(confirmBody, map[string]string{"authorization": "Bearer tok-0123456789abcdeX"}), 401},
		{"not JSON", callback("confirm!", auth), 400},
		{"no attempt or fencing token", callback(`{"xid":"shop.0123456789","branchId":"b1","action":"confirm"}`, auth), 400},
		{"too large", callback(`{"payload":"`+strings.Repeat("x", 600)+`"}`, auth), 413},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, c.req)
		if rec.Code != c.status {
			t.Errorf("%s: answer %d %q, want %d", c.name, rec.Code, rec.Body.String(), c.status)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, callback(`{"xid":"shop.0123456789","branchId":"b1","action":"confirm"}`, auth))
	if !strings.Contains(rec.Body.String(), "no attempt, fencingToken") {
		t.Fatalf("the 400 does not say what is missing: %q", rec.Body.String())
	}
}

func TestCallbackHandlerSeesTheRequestsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h := CallbackHandler(func(ctx context.Context, cb *Callback) error { return ctx.Err() }, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, callback(confirmBody, confirmHeaders).WithContext(ctx))
	if rec.Code != 500 || rec.Body.String() != context.Canceled.Error() {
		t.Fatalf("answer %d %q", rec.Code, rec.Body.String())
	}
}

func TestTypedCallback(t *testing.T) {
	type leg struct {
		Account string `json:"account"`
		Amount  int    `json:"amount"`
	}
	var got leg
	h := CallbackHandler(TypedCallback(func(ctx context.Context, cb *Callback, p leg) error {
		got = p
		return nil
	}), nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, callback(confirmBody, confirmHeaders))
	if rec.Code != 204 || got != (leg{"a", 30}) {
		t.Fatalf("answer %d, payload %+v", rec.Code, got)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, callback(strings.Replace(confirmBody, `"amount":30`, `"amount":"thirty"`, 1), confirmHeaders))
	if rec.Code != 409 || !strings.Contains(rec.Body.String(), "does not decode") {
		t.Fatalf("a payload of the wrong shape: %d %q", rec.Code, rec.Body.String())
	}
}

func TestCheckBackHandler(t *testing.T) {
	preparedAt := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	body := fmt.Sprintf(`{"xid":"shop.0123456789","name":"order paid","preparedAt":%d}`, preparedAt.UnixMilli())
	var got *CheckBack
	answer := AnswerCommitted
	var fail error
	h := CheckBackHandler(func(ctx context.Context, cb *CheckBack) (CheckBackAnswer, error) {
		got = cb
		return answer, fail
	}, nil)
	serve := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, callback(body, map[string]string{HeaderXid: "shop.0123456789"}))
		return rec
	}
	for _, a := range []CheckBackAnswer{AnswerCommitted, AnswerRolledBack, AnswerUnknown} {
		answer = a
		rec := serve()
		var out map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		if rec.Code != 200 || out["answer"] != string(a) || rec.Header().Get("content-type") != "application/json" {
			t.Fatalf("answer %d %s", rec.Code, rec.Body)
		}
	}
	if got.Xid != "shop.0123456789" || got.Name != "order paid" || !got.PreparedAt.Equal(preparedAt) {
		t.Fatalf("check-back %+v", got)
	}
	answer = "maybe"
	if rec := serve(); rec.Code != 500 || !strings.Contains(rec.Body.String(), `"maybe"`) {
		t.Fatalf("an invalid answer: %d %s", rec.Code, rec.Body)
	}
	answer, fail = AnswerCommitted, errors.New("database is down")
	if rec := serve(); rec.Code != 500 || rec.Body.String() != "database is down" {
		t.Fatalf("a failed check-back: %d %s", rec.Code, rec.Body)
	}
}

func TestCompareFencing(t *testing.T) {
	cases := []struct {
		aToken   string
		aAttempt int
		bToken   string
		bAttempt int
		want     int
	}{
		{"9", 5, "10", 1, -1},
		{"18446744073709551617", 1, "18446744073709551616", 9, 1}, // beyond uint64
		{"42", 3, "42", 3, 0},
		{"42", 2, "42", 3, -1},
		{"042", 4, "42", 3, 1},
	}
	for _, c := range cases {
		if got := CompareFencing(c.aToken, c.aAttempt, c.bToken, c.bAttempt); got != c.want {
			t.Errorf("CompareFencing(%s,%d, %s,%d) = %d, want %d", c.aToken, c.aAttempt, c.bToken, c.bAttempt, got, c.want)
		}
	}
}

// The handlers behind a real http.Server, as the sidecar reaches them.
func TestCallbackHandlersOverHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/debit/confirm", CallbackHandler(func(ctx context.Context, cb *Callback) error {
		if cb.Attempt == 1 {
			return errors.New("not yet")
		}
		return nil
	}, nil))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(attempt int) (int, string) {
		body := strings.Replace(confirmBody, `"attempt":2`, fmt.Sprintf(`"attempt":%d`, attempt), 1)
		res, err := http.Post(srv.URL+"/debit/confirm", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if status, body := post(1); status != 500 || body != "not yet" {
		t.Fatalf("first attempt %d %q", status, body)
	}
	if status, _ := post(2); status != 204 {
		t.Fatalf("second attempt %d", status)
	}
}
