package txloop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// answering is a fake sidecar that answers every request with status, content type and body.
func answering(t *testing.T, status int, contentType, body string) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("content-type", contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := New(WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestProblemDocumentBecomesProblemWithItsFields(t *testing.T) {
	doc := `{"type":"https://txloop.dev/problems/TransactionAlreadyDecided","title":"Conflict","status":409,
		"detail":"transaction shop.0123456789 was already decided: rollback (by rollback, now ROLLED_BACK)",
		"name":"TransactionAlreadyDecided","xid":"shop.0123456789","outcome":"rollback","transactionStatus":"ROLLED_BACK",
		"decidedBy":"rollback","op":"commit"}`
	c := answering(t, 409, "application/problem+json; charset=utf-8", doc)
	err := c.Commit(context.Background(), "shop.0123456789")
	if err == nil {
		t.Fatal("commit succeeded against a 409")
	}
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("not a *Problem: %T %v", err, err)
	}
	if p.Status != 409 || p.Name != ErrTransactionAlreadyDecided || p.Xid != "shop.0123456789" || p.Outcome != "rollback" ||
		p.TransactionStatus != "ROLLED_BACK" || p.DecidedBy != "rollback" || !strings.Contains(p.Detail, "already decided") {
		t.Fatalf("fields not parsed: %+v", p)
	}
	if string(p.Fields["op"]) != `"commit"` {
		t.Fatalf("an unnamed member is not kept in Fields: %v", p.Fields)
	}
	if !errors.Is(err, ErrTransactionAlreadyDecided) || !IsAlreadyDecided(err) {
		t.Fatal("errors.Is does not match the problem's name")
	}
	if errors.Is(err, ErrTransactionNotFound) || IsNotFound(err) || IsRegistrationRefused(err) {
		t.Fatal("errors.Is matches another name")
	}
	if NameOf(err) != ErrTransactionAlreadyDecided {
		t.Fatalf("NameOf = %q", NameOf(err))
	}
	if !errors.Is(err, &Problem{Name: ErrTransactionAlreadyDecided}) {
		t.Fatal("errors.Is does not match a *Problem of the same name")
	}
	want := "txloop: TransactionAlreadyDecided (HTTP 409): transaction shop.0123456789 was already decided"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Error() = %q, want prefix %q", err.Error(), want)
	}
}

func TestProblemNamesThatAreKindsOfOthers(t *testing.T) {
	payload := &Problem{Status: 422, Name: ErrPayloadError}
	if !errors.Is(payload, ErrPayloadError) || !errors.Is(payload, ErrValidationError) {
		t.Fatal("a PayloadError is a ValidationError")
	}
	if errors.Is(&Problem{Name: ErrValidationError}, ErrPayloadError) {
		t.Fatal("a ValidationError is not a PayloadError")
	}
	if !errors.Is(&Problem{Name: ErrEtcdUnavailable}, ErrEtcdError) {
		t.Fatal("an EtcdUnavailable is an EtcdError")
	}
	if errors.Is(&Problem{Status: 502}, ErrorName("")) {
		t.Fatal("a problem without a name matches the empty name")
	}
}

func TestValidationProblemCarriesItsField(t *testing.T) {
	c := answering(t, 422, "application/problem+json",
		`{"type":"https://txloop.dev/problems/ValidationError","title":"Unprocessable Content","status":422,"detail":"body.name: must NOT have fewer than 1 characters","name":"ValidationError","field":"body.name"}`)
	_, err := c.Begin(context.Background(), BeginRequest{Name: ""})
	p, ok := AsProblem(err)
	if !ok || p.Name != ErrValidationError || p.Field != "body.name" || p.Status != 422 {
		t.Fatalf("got %#v", err)
	}
}

func TestAnswerThatIsNotAProblemDocument(t *testing.T) {
	body := "<html>" + strings.Repeat("bad gateway ", 100) + "</html>"
	c := answering(t, 502, "text/html", body)
	_, err := c.Get(context.Background(), "shop.0123456789")
	p, ok := AsProblem(err)
	if !ok {
		t.Fatalf("not a *Problem: %v", err)
	}
	if p.Status != 502 || p.Name != "" || p.Title != "Bad Gateway" || len(p.Detail) != excerptBytes || !strings.HasPrefix(p.Detail, "<html>bad gateway") {
		t.Fatalf("got %+v", p)
	}
	if p.Fields != nil {
		t.Fatal("Fields of a non-problem answer")
	}
	// A JSON answer without a name or detail is not a problem document either.
	c = answering(t, 500, "application/json", `{"oops":true}`)
	_, err = c.Get(context.Background(), "shop.0123456789")
	if p, ok := AsProblem(err); !ok || p.Name != "" || p.Detail != `{"oops":true}` {
		t.Fatalf("got %#v", err)
	}
}

func TestProblemStatusIsTheAnswers(t *testing.T) {
	c := answering(t, 503, "application/problem+json", `{"status":200,"name":"EtcdUnavailable","detail":"etcd down"}`)
	err := c.Ready(context.Background())
	if p, ok := AsProblem(err); !ok || p.Status != 503 || p.Title != "Service Unavailable" || !errors.Is(err, ErrEtcdError) {
		t.Fatalf("got %#v", err)
	}
}

func TestTransportErrorKeepsTheContextError(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	c, _ := New(WithBaseURL(srv.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Get(ctx, "shop.0123456789")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded in the chain", err)
	}
	if _, ok := AsProblem(err); ok {
		t.Fatal("a transport error is not a *Problem")
	}
	if !strings.HasPrefix(err.Error(), "txloop: get: ") {
		t.Fatalf("the error does not name the call: %v", err)
	}
}

func TestNonRetryableAndGone(t *testing.T) {
	base := errors.New("card declined")
	err := NonRetryable(base)
	if !IsNonRetryable(err) || !errors.Is(err, base) || err.Error() != "card declined" {
		t.Fatalf("NonRetryable: %v", err)
	}
	if !IsNonRetryable(NonRetryablef("order %d: %w", 42, base)) || NonRetryable(nil) != nil {
		t.Fatal("NonRetryablef / NonRetryable(nil)")
	}
	if IsNonRetryable(errors.New("x")) || IsNonRetryable(ErrGone) {
		t.Fatal("a plain error is non-retryable")
	}
	if !errors.Is(fmt.Errorf("already refunded: %w", ErrGone), ErrGone) {
		t.Fatal("a wrapped ErrGone")
	}
}
