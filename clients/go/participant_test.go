package txloop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testXid = "shop.0123456789abcdef"

// participantFixture is a fake sidecar that registers branches as b1 and records reports, and a
// Try route behind Client.Participant.
type participantFixture struct {
	sidecar  *fakeSidecar
	client   *Client
	deadline time.Time
}

func newParticipantFixture(t *testing.T) *participantFixture {
	t.Helper()
	f := &participantFixture{sidecar: newFakeSidecar(t), deadline: time.Now().Add(time.Minute).Truncate(time.Millisecond)}
	f.sidecar.on("POST /v1/branches", answerJSON(201, Registered{BranchID: "b1", TryState: TryStatePending}))
	f.sidecar.on("POST /v1/branches/"+testXid+"/b1/report", answerStatus(204))
	f.client = f.sidecar.client(t)
	return f
}

// try calls h as an initiator would, with the transaction's headers and body.
func (f *participantFixture) try(t *testing.T, h http.Handler, body string, headers map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/debit/try", strings.NewReader(body))
	req.Header.Set(HeaderXid, testXid)
	req.Header.Set(HeaderDeadline, strconv.FormatInt(f.deadline.UnixMilli(), 10))
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// calls returns the fake sidecar's requests as "register" / "report:<outcome>:<error>".
func (f *participantFixture) calls(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, r := range f.sidecar.requests() {
		switch {
		case r.Path == "/v1/branches":
			out = append(out, "register")
		case strings.HasSuffix(r.Path, "/report"):
			b := decodeBody(t, r.Body)
			e, _ := b["error"].(string)
			out = append(out, fmt.Sprintf("report:%s:%s", b["outcome"], e))
		default:
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

func TestParticipantRegistersRunsTheHandlerAndReports(t *testing.T) {
	f := newParticipantFixture(t)
	var seenTry *TryContext
	var seenBody string
	var seenDeadline time.Time
	h := f.client.Participant("debit", nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenTry, _ = TryFromContext(r.Context())
		seenDeadline, _ = r.Context().Deadline()
		b, _ := io.ReadAll(r.Body)
		seenBody = string(b)
		if got := f.calls(t); len(got) != 1 || got[0] != "register" {
			t.Errorf("the handler ran before the register, or after a report: %v", got)
		}
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, `{"frozen":30,"branch":%q}`, BranchID(r.Context()))
	}))
	rec := f.try(t, h, `{"account":"a","amount":30}`, nil)
	if rec.Code != http.StatusCreated || rec.Body.String() != `{"frozen":30,"branch":"b1"}` || rec.Header().Get("content-type") != "application/json" {
		t.Fatalf("answer %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
	if seenTry == nil || seenTry.Xid != testXid || seenTry.BranchID != "b1" || seenTry.Resource != "debit" || !seenTry.Deadline.Equal(f.deadline) || seenTry.ViaSidecar {
		t.Fatalf("try context %+v", seenTry)
	}
	if !seenDeadline.Equal(f.deadline) {
		t.Fatalf("the handler's context ends at %v, not the deadline %v", seenDeadline, f.deadline)
	}
	if seenBody != `{"account":"a","amount":30}` {
		t.Fatalf("the handler read %q", seenBody)
	}
	if got := f.calls(t); strings.Join(got, " ") != "register report:succeeded:" {
		t.Fatalf("calls %v", got)
	}
	reg := decodeBody(t, f.sidecar.requests()[0].Body)
	if reg["xid"] != testXid || reg["resource"] != "debit" || reg["deadline"] != float64(f.deadline.UnixMilli()) {
		t.Fatalf("register body %v", reg)
	}
	if p, _ := json.Marshal(reg["payload"]); string(p) != `{"account":"a","amount":30}` {
		t.Fatalf("payload %s", p)
	}
	if _, ok := reg["branchId"]; ok {
		t.Fatal("a branch id sent without a BranchID option")
	}
}

func TestParticipantOptionsChooseBranchIDAndPayload(t *testing.T) {
	f := newParticipantFixture(t)
	h := f.client.Participant("debit", &ParticipantOptions{
		BranchID: func(r *http.Request) string { return r.Header.Get("x-request-id") },
		Payload: func(r *http.Request, body []byte) (interface{}, error) {
			return map[string]string{"raw": string(body)}, nil
		},
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	if rec := f.try(t, h, "amount=30", map[string]string{"x-request-id": "req-42"}); rec.Code != 200 {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
	reg := decodeBody(t, f.sidecar.requests()[0].Body)
	if reg["branchId"] != "req-42" || reg["payload"].(map[string]interface{})["raw"] != "amount=30" {
		t.Fatalf("register body %v", reg)
	}
	// The default payload: a non-JSON body as a JSON string, an empty body as none.
	f2 := newParticipantFixture(t)
	h2 := f2.client.Participant("debit", nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	f2.try(t, h2, "amount=30", nil)
	f2.try(t, h2, "", nil)
	if p := decodeBody(t, f2.sidecar.requests()[0].Body)["payload"]; p != "amount=30" {
		t.Fatalf("payload %v", p)
	}
	if _, ok := decodeBody(t, f2.sidecar.requests()[2].Body)["payload"]; ok {
		t.Fatal("a payload for an empty body")
	}
}

func TestParticipantReportsAFailedAnswer(t *testing.T) {
	f := newParticipantFixture(t)
	h := f.client.Participant("debit", nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "insufficient funds", http.StatusUnprocessableEntity)
	}))
	rec := f.try(t, h, `{"amount":300}`, nil)
	if rec.Code != http.StatusUnprocessableEntity || strings.TrimSpace(rec.Body.String()) != "insufficient funds" {
		t.Fatalf("answer %d %q", rec.Code, rec.Body.String())
	}
	if got := f.calls(t); strings.Join(got, " ") != "register report:failed:the Try answered 422: insufficient funds" {
		t.Fatalf("calls %v", got)
	}
}

func TestParticipantTryFuncErrorReportsFailed(t *testing.T) {
	f := newParticipantFixture(t)
	h := f.client.Participant("debit", nil)(TryFunc(func(w http.ResponseWriter, r *http.Request) error {
		return errors.New("account a is frozen")
	}))
	rec := f.try(t, h, `{}`, nil)
	var p Problem
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	if rec.Code != http.StatusFailedDependency || rec.Header().Get("content-type") != "application/problem+json" || p.Name != ErrTryFailed ||
		p.Detail != "account a is frozen" || p.BranchID != "b1" || p.Xid != testXid || p.Resource != "debit" {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
	if got := f.calls(t); strings.Join(got, " ") != "register report:failed:account a is frozen" {
		t.Fatalf("calls %v", got)
	}
	// An error after a 2xx answer: still failed, and the answer says so.
	f2 := newParticipantFixture(t)
	h2 := f2.client.Participant("debit", nil)(TryFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return errors.New("late failure")
	}))
	if rec := f2.try(t, h2, `{}`, nil); rec.Code != http.StatusFailedDependency {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
	if got := f2.calls(t); strings.Join(got, " ") != "register report:failed:late failure" {
		t.Fatalf("calls %v", got)
	}
}

func TestParticipantPanicReportsFailedAndGoesOn(t *testing.T) {
	f := newParticipantFixture(t)
	h := f.client.Participant("debit", nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("nil map") }))
	func() {
		defer func() {
			if v := recover(); v != "nil map" {
				t.Errorf("recovered %v", v)
			}
		}()
		f.try(t, h, `{}`, nil)
	}()
	if got := f.calls(t); strings.Join(got, " ") != "register report:failed:the Try panicked: nil map" {
		t.Fatalf("calls %v", got)
	}
}

func TestParticipantRefusedRegistrationDoesNotRunTheTry(t *testing.T) {
	f := newParticipantFixture(t)
	f.sidecar.on("POST /v1/branches", func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("content-type", "application/problem+json")
		w.WriteHeader(409)
		_, _ = w.Write([]byte(`{"type":"https://txloop.dev/problems/BranchRegistrationRefused","title":"Conflict","status":409,"name":"BranchRegistrationRefused","detail":"transaction ` + testXid + ` is ROLLING_BACK: no new branch may join it","xid":"` + testXid + `","transactionStatus":"ROLLING_BACK","mode":"tcc"}`))
	})
	ran := false
	h := f.client.Participant("debit", nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true }))
	rec := f.try(t, h, `{}`, nil)
	if ran {
		t.Fatal("the Try ran after its registration was refused")
	}
	p := parseProblem(rec.Code, rec.Header().Get("content-type"), rec.Body.Bytes())
	if rec.Code != 409 || p.Name != ErrBranchRegistrationRefused || p.TransactionStatus != "ROLLING_BACK" || p.Mode != "tcc" {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
	if got := f.calls(t); strings.Join(got, " ") != "register" {
		t.Fatalf("calls %v", got)
	}
}

func TestParticipantReportRefusedAfterASuccess(t *testing.T) {
	f := newParticipantFixture(t)
	f.sidecar.on("POST /v1/branches/"+testXid+"/b1/report", problemAnswer(409, ErrTransactionAlreadyDecided, "rolled back meanwhile"))
	h := f.client.Participant("debit", nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"frozen":30}`))
	}))
	rec := f.try(t, h, `{}`, nil)
	if rec.Code != 409 || !strings.Contains(rec.Body.String(), `"TransactionAlreadyDecided"`) {
		t.Fatalf("the caller got %d %s, not the refusal", rec.Code, rec.Body)
	}
	// The sidecar gone: 502 SidecarUnavailable, so the initiator does not count the branch prepared.
	f2 := newParticipantFixture(t)
	h2 := f2.client.Participant("debit", &ParticipantOptions{ReportTimeout: time.Second})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f2.sidecar.srv.CloseClientConnections()
		f2.sidecar.srv.Close()
	}))
	rec = f2.try(t, h2, `{}`, nil)
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), `"SidecarUnavailable"`) {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
}

func TestParticipantReplaysASucceededBranchAndRefusesAFailedOne(t *testing.T) {
	f := newParticipantFixture(t)
	f.sidecar.on("POST /v1/branches", answerJSON(201, Registered{BranchID: "b1", Existed: true, TryState: TryStateSucceeded}))
	ran := 0
	h := f.client.Participant("debit", nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran++ }))
	rec := f.try(t, h, `{}`, nil)
	if ran != 0 || rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"branchId":"b1","replayed":true}` {
		t.Fatalf("ran %d, answer %d %s", ran, rec.Code, rec.Body)
	}
	f.sidecar.on("POST /v1/branches", answerJSON(201, Registered{BranchID: "b1", Existed: true, TryState: TryStateFailed}))
	if rec := f.try(t, h, `{}`, nil); ran != 0 || rec.Code != http.StatusFailedDependency || !strings.Contains(rec.Body.String(), `"TryFailed"`) {
		t.Fatalf("ran %d, answer %d %s", ran, rec.Code, rec.Body)
	}
	// PENDING: an earlier call died; the Try runs again, knowing it.
	f.sidecar.on("POST /v1/branches", answerJSON(201, Registered{BranchID: "b1", Existed: true, TryState: TryStatePending}))
	var existed bool
	h = f.client.Participant("debit", nil)(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		tc, _ := TryFromContext(r.Context())
		existed = tc.Existed
	}))
	if rec := f.try(t, h, `{}`, nil); rec.Code != 200 || !existed {
		t.Fatalf("answer %d, existed %v", rec.Code, existed)
	}
	if got := f.calls(t); strings.Join(got, " ") != "register register register report:succeeded:" {
		t.Fatalf("calls %v", got)
	}
}

func TestParticipantWithoutTheTransactionHeaders(t *testing.T) {
	f := newParticipantFixture(t)
	h := f.client.Participant("debit", nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("ran") }))
	for _, headers := range []map[string]string{{HeaderXid: ""}, {HeaderDeadline: ""}, {HeaderDeadline: "soon"}} {
		rec := f.try(t, h, `{}`, headers)
		p := parseProblem(rec.Code, rec.Header().Get("content-type"), rec.Body.Bytes())
		if rec.Code != 400 || p.Name != ErrValidationError || !strings.HasPrefix(p.Field, "header txloop-") {
			t.Fatalf("%v: answer %d %s", headers, rec.Code, rec.Body)
		}
	}
	if len(f.sidecar.requests()) != 0 {
		t.Fatal("the sidecar was called")
	}
	// Past the deadline: refused here, the Try never starts.
	rec := f.try(t, h, `{}`, map[string]string{HeaderDeadline: strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10)})
	if p := parseProblem(rec.Code, rec.Header().Get("content-type"), rec.Body.Bytes()); rec.Code != 409 || p.Name != ErrDeadlineExceeded || p.Xid != testXid {
		t.Fatalf("past the deadline: %d %s", rec.Code, rec.Body)
	}
	big := &ParticipantOptions{MaxBodyBytes: 8}
	h = f.client.Participant("debit", big)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("ran") }))
	if rec := f.try(t, h, `{"amount":30000}`, nil); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("answer %d", rec.Code)
	}
}

func TestParticipantPassesTheSidecarsOwnTryCallThrough(t *testing.T) {
	f := newParticipantFixture(t)
	var seen *TryContext
	h := f.client.Participant("debit", &ParticipantOptions{Token: "tok-0123456789abcdef"})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = TryFromContext(r.Context())
		w.WriteHeader(http.StatusTeapot) // the sidecar records the outcome from this, not the middleware
	}))
	headers := map[string]string{HeaderBranchID: "s1", HeaderIdempotencyKey: testXid + "/s1/try", "authorization": "Bearer tok-0123456789abcdef"}
	rec := f.try(t, h, `{}`, headers)
	if rec.Code != http.StatusTeapot || seen == nil || !seen.ViaSidecar || seen.BranchID != "s1" {
		t.Fatalf("answer %d, try %+v", rec.Code, seen)
	}
	if len(f.sidecar.requests()) != 0 {
		t.Fatalf("the middleware registered or reported a Try the sidecar runs: %v", f.calls(t))
	}
	// The same headers without the sidecar's token are not the sidecar's call: the Try is
	// registered (and reported) like any other, never run unregistered.
	headers["authorization"] = "Bearer wrong"
	seen = nil
	f.try(t, h, `{}`, headers)
	if seen != nil && seen.ViaSidecar {
		t.Fatalf("a call with a wrong token was taken for the sidecar's: %+v", seen)
	}
	if len(f.sidecar.requests()) == 0 {
		t.Fatal("a call with a wrong token ran without registering its branch")
	}
}

func TestParticipantForgedSidecarHeadersWithoutATokenStillRegister(t *testing.T) {
	f := newParticipantFixture(t)
	ran := false
	h := f.client.Participant("debit", nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran = true
		if tc, _ := TryFromContext(r.Context()); tc != nil && tc.ViaSidecar {
			t.Fatalf("forged headers taken for the sidecar's call: %+v", tc)
		}
	}))
	f.try(t, h, `{}`, map[string]string{HeaderBranchID: "x1", HeaderIdempotencyKey: testXid + "/x1/try"})
	if !ran || len(f.sidecar.requests()) == 0 {
		t.Fatalf("ran %v, sidecar calls %d: the Try must be registered before it runs", ran, len(f.sidecar.requests()))
	}
}

func TestTryFromContextOutsideTheMiddleware(t *testing.T) {
	if _, ok := TryFromContext(context.Background()); ok || BranchID(context.Background()) != "" {
		t.Fatal("a branch in an empty context")
	}
}
