// Command go-bank is the demo's bank-b written in Go (npm run demo -- go): one account, TCC
// resources debit and credit, served beside a txloop sidecar through the Go client
// (clients/go). It is what a Go service needs to take part in txloop transactions:
//
//   - POST /try/debit, /try/credit: the Try, behind the client's Participant middleware, which
//     registers the branch with its sidecar, runs the handler and reports the outcome. Body
//     {"amount": 30, "counterparty"?: "C", "holdConfirmMs"?: 0}; 200 {branchId, account};
//     409 {error, branchId} when the account refuses (insufficient funds, a late Try).
//   - POST /debit/confirm, /debit/cancel, /credit/confirm, /credit/cancel: phase 2, which the
//     leader among the app's sidecars calls (CallbackHandler): idempotent by branch id, a cancel
//     that finds no Try is an empty rollback, and an attempt older (fencing token, attempt) than
//     one already seen for its branch is turned away. holdConfirmMs > 0 holds the first confirm
//     of that branch that long, or until its caller hangs up (its sidecar died): then nothing is
//     applied and the next leader's attempt does it.
//   - GET /account: the account, in demo/accounts.ts's shape.
//
// The account lives in memory and is written through to --state (a JSON file, replaced
// atomically) after each change; --balance opens it afresh, without it the file is loaded.
//
//	go-bank --app bank-b --account B --balance 100 --state account-B.json [--listen 127.0.0.1:0] [--sidecar URL]
//
// Its own sidecar's URL (for the Try middleware) comes from --sidecar or, since that sidecar needs
// this service's URL first, as a line {"sidecar": "http://…"} on stdin; until then a Try answers
// 503. stdout carries one JSON object a line for the demo (ready, sidecar, try, phase2-start,
// phase2); it exits when stdin closes (its parent is gone) or on SIGTERM/SIGINT.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	txloop "github.com/txloop/txloop/clients/go"
)

// Leg is a Try's body, stored by the sidecar as the branch's payload and handed back to its
// confirm and cancel.
type Leg struct {
	Amount       int64  `json:"amount"`
	Counterparty string `json:"counterparty,omitempty"`
	// HoldConfirmMs holds the branch's first confirm this long, or until its caller hangs up.
	HoldConfirmMs int64 `json:"holdConfirmMs,omitempty"`
}

// maxHoldMs bounds holdConfirmMs, well under the sidecar's handler timeout (30 s by default).
const maxHoldMs = 20_000

type fence struct {
	token   string
	attempt int
}

type bank struct {
	app   string
	state string
	out   *events
	// mu guards acct, held and latest.
	mu   sync.Mutex
	acct *Account
	// held: branches whose first confirm was held already (only the first one is).
	held map[string]bool
	// latest: the newest (fencing token, attempt) seen per branch and action.
	latest map[string]fence
	// tries serves /try/<resource> once the sidecar's URL is known.
	tries atomic.Pointer[http.ServeMux]
}

func main() {
	app := flag.String("app", "bank-b", "the txloop app this service is (its sidecars' --app)")
	name := flag.String("account", "B", "the account's name")
	balance := flag.Int64("balance", -1, "open the account afresh with this balance (default: load --state)")
	state := flag.String("state", "", "the JSON file the account is written through to (required)")
	listen := flag.String("listen", "127.0.0.1:0", "where to serve the Try, the callbacks and GET /account (port 0: a free one)")
	sidecar := flag.String("sidecar", "", "this service's own sidecar's URL (else a {\"sidecar\": url} line on stdin)")
	flag.Parse()
	log.SetPrefix("go-bank: ")
	if *state == "" {
		log.Fatal("--state is required")
	}

	stop := make(chan string, 4)
	out := &events{app: *app, gone: func() { stop <- "stdout closed" }}
	b := &bank{app: *app, state: *state, out: out, held: map[string]bool{}, latest: map[string]fence{}}
	if *balance >= 0 {
		b.acct = &Account{Name: *name, Balance: *balance, Branches: map[string]*Branch{}}
		if err := b.acct.save(*state); err != nil {
			log.Fatalf("opening account %s: %v", *name, err)
		}
	} else {
		a, err := loadAccount(*state)
		if err != nil {
			log.Fatalf("loading the account: %v", err)
		}
		b.acct = a
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/try/", func(w http.ResponseWriter, r *http.Request) {
		tries := b.tries.Load()
		if tries == nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "go-bank does not know its sidecar yet"})
			return
		}
		tries.ServeHTTP(w, r)
	})
	opts := &txloop.HandlerOptions{ErrorLog: log.Default()}
	for _, kind := range []string{"debit", "credit"} {
		mux.Handle("/"+kind+"/confirm", txloop.CallbackHandler(b.confirm(), opts))
		mux.Handle("/"+kind+"/cancel", txloop.CallbackHandler(b.cancel(kind), opts))
	}
	mux.HandleFunc("/account", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use GET /account"})
			return
		}
		b.mu.Lock()
		a := b.acct.clone()
		b.mu.Unlock()
		writeJSON(w, http.StatusOK, a)
	})
	if *sidecar != "" {
		if err := b.useSidecar(*sidecar); err != nil {
			log.Fatal(err)
		}
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen %s: %v", *listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("serve: %v", err)
			stop <- "server failed"
		}
	}()
	// SIGPIPE on stdout (the parent stopped reading) is then an EPIPE error: shut down, no crash.
	signal.Ignore(syscall.SIGPIPE)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() { stop <- (<-signals).String() }()
	go b.readStdin(stop)

	b.out.emit("ready", map[string]interface{}{"port": ln.Addr().(*net.TCPAddr).Port, "account": *name})
	why := <-stop
	log.Printf("stopping (%s)", why)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}

// readStdin takes {"sidecar": url} lines; the end of stdin (the parent is gone) stops the service.
func (b *bank) readStdin(stop chan<- string) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var msg struct {
			Sidecar string `json:"sidecar"`
		}
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil || msg.Sidecar == "" {
			log.Printf("stdin: ignoring %q (expected {\"sidecar\": url})", sc.Text())
			continue
		}
		if err := b.useSidecar(msg.Sidecar); err != nil {
			log.Print(err)
			continue
		}
	}
	stop <- "stdin closed"
}

// useSidecar points the Try middleware at the sidecar at url.
func (b *bank) useSidecar(url string) error {
	client, err := txloop.New(txloop.WithBaseURL(url), txloop.WithUserAgent("go-bank"))
	if err != nil {
		return err
	}
	tries := http.NewServeMux()
	for _, kind := range []string{"debit", "credit"} {
		tries.Handle("/try/"+kind, client.Participant(kind, nil)(b.try(kind)))
	}
	b.tries.Store(tries)
	b.out.emit("sidecar", map[string]interface{}{"url": client.BaseURL()})
	return nil
}

// try is the Try of a debit (freeze the amount) or a credit (announce it), run behind the
// Participant middleware: the branch is registered already; an error reports it failed.
func (b *bank) try(kind string) txloop.TryFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		t, _ := txloop.TryFromContext(r.Context())
		var leg Leg
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&leg); err != nil {
			err = fmt.Errorf("body must be {\"amount\": 30, \"counterparty\"?: \"C\", \"holdConfirmMs\"?: 0}: %v", err)
			writeJSON(w, http.StatusBadRequest, map[string]interface{}{"error": err.Error(), "branchId": t.BranchID})
			return err
		}
		if leg.Amount <= 0 || leg.HoldConfirmMs < 0 || leg.HoldConfirmMs > maxHoldMs {
			err := fmt.Errorf("amount must be positive and holdConfirmMs from 0 to %d, got %d and %d", maxHoldMs, leg.Amount, leg.HoldConfirmMs)
			writeJSON(w, http.StatusBadRequest, map[string]interface{}{"error": err.Error(), "branchId": t.BranchID})
			return err
		}
		b.mu.Lock()
		changed, err := b.acct.Try(kind, t.Xid, t.BranchID, leg.Amount)
		if err == nil && changed {
			err = b.acct.save(b.state)
		}
		snap := b.snapshot()
		b.mu.Unlock()
		if err != nil {
			status := http.StatusInternalServerError
			if IsRefusal(err) {
				status = http.StatusConflict
			}
			err = fmt.Errorf("Try of %s on account %s failed: %w", kind, snap["name"], err)
			b.out.emit("try", map[string]interface{}{"xid": t.Xid, "branchId": t.BranchID, "resource": kind, "amount": leg.Amount, "result": "refused", "error": err.Error()})
			writeJSON(w, status, map[string]interface{}{"error": err.Error(), "branchId": t.BranchID, "xid": t.Xid, "refused": IsRefusal(err)})
			return err
		}
		result := "reserved"
		if !changed {
			result = "repeat"
		}
		b.out.emit("try", map[string]interface{}{"xid": t.Xid, "branchId": t.BranchID, "resource": kind, "amount": leg.Amount, "result": result, "account": snap})
		writeJSON(w, http.StatusOK, map[string]interface{}{"branchId": t.BranchID, "account": snap})
		return nil
	}
}

// confirm moves what the branch's Try reserved; see the package comment for holdConfirmMs.
func (b *bank) confirm() txloop.CallbackFunc {
	return txloop.TypedCallback(func(ctx context.Context, cb *txloop.Callback, leg Leg) error {
		b.mu.Lock()
		if err := b.fenced(cb); err != nil {
			b.mu.Unlock()
			return err
		}
		hold := leg.HoldConfirmMs > 0 && !b.held[cb.BranchID]
		if hold {
			b.held[cb.BranchID] = true
		}
		b.mu.Unlock()
		start := b.attemptFields(cb)
		if hold {
			start["holdMs"] = leg.HoldConfirmMs
		}
		b.out.emit("phase2-start", start)
		if hold {
			t := time.NewTimer(time.Duration(leg.HoldConfirmMs) * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				b.out.emit("phase2", with(b.attemptFields(cb), "result", "abandoned", "error", "its caller hung up while it was held: nothing applied"))
				return ctx.Err()
			case <-t.C:
			}
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if err := b.fenced(cb); err != nil {
			return err
		}
		changed, err := b.acct.Confirm(cb.BranchID)
		if err == nil && changed {
			err = b.acct.save(b.state)
		}
		if err != nil {
			b.out.emit("phase2", with(b.attemptFields(cb), "result", "failed", "error", err.Error()))
			return err
		}
		b.out.emit("phase2", with(b.attemptFields(cb), "result", resultOf(changed, "applied"), "branch", b.acct.Branches[cb.BranchID], "account", b.snapshot()))
		return nil
	})
}

// cancel releases what the branch's Try reserved; with no Try recorded, an empty rollback.
func (b *bank) cancel(kind string) txloop.CallbackFunc {
	return func(ctx context.Context, cb *txloop.Callback) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if err := b.fenced(cb); err != nil {
			return err
		}
		b.out.emit("phase2-start", b.attemptFields(cb))
		changed, empty, err := b.acct.Cancel(kind, cb.Xid, cb.BranchID)
		if err == nil && changed {
			err = b.acct.save(b.state)
		}
		if err != nil {
			b.out.emit("phase2", with(b.attemptFields(cb), "result", "failed", "error", err.Error()))
			return err
		}
		result := resultOf(changed, "released")
		if empty && changed {
			result = "empty"
		}
		b.out.emit("phase2", with(b.attemptFields(cb), "result", result, "branch", b.acct.Branches[cb.BranchID], "account", b.snapshot()))
		return nil
	}
}

// fenced records cb as the newest attempt of its branch's action, or turns it away (410, nothing
// left for it to do) when a newer one was seen: its sidecar no longer leads. Called with mu held.
func (b *bank) fenced(cb *txloop.Callback) error {
	key := cb.BranchID + "/" + string(cb.Action)
	last, seen := b.latest[key]
	if seen && txloop.CompareFencing(cb.FencingToken, cb.Attempt, last.token, last.attempt) < 0 {
		b.out.emit("phase2", with(b.attemptFields(cb), "result", "superseded", "error", fmt.Sprintf("attempt %d (fencing token %s) came later", last.attempt, last.token)))
		return fmt.Errorf("%w: attempt %d of %s (fencing token %s) is older than attempt %d (fencing token %s)", txloop.ErrGone, cb.Attempt, key, cb.FencingToken, last.attempt, last.token)
	}
	b.latest[key] = fence{cb.FencingToken, cb.Attempt}
	return nil
}

func (b *bank) attemptFields(cb *txloop.Callback) map[string]interface{} {
	return map[string]interface{}{"xid": cb.Xid, "branchId": cb.BranchID, "resource": cb.Resource, "action": string(cb.Action), "attempt": cb.Attempt, "fencingToken": cb.FencingToken, "tryState": string(cb.TryState)}
}

// snapshot is the account's figures (mu held).
func (b *bank) snapshot() map[string]interface{} {
	a := b.acct
	return map[string]interface{}{"name": a.Name, "balance": a.Balance, "frozen": a.Frozen, "incoming": a.Incoming}
}

func resultOf(changed bool, done string) string {
	if changed {
		return done
	}
	return "repeat"
}

func with(m map[string]interface{}, kv ...interface{}) map[string]interface{} {
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// events writes one JSON object a line on stdout, for the demo.
type events struct {
	app  string
	mu   sync.Mutex
	dead bool
	gone func()
}

func (e *events) emit(event string, fields map[string]interface{}) {
	line := map[string]interface{}{"event": event, "app": e.app, "pid": os.Getpid(), "at": time.Now().UnixMilli()}
	for k, v := range fields {
		line[k] = v
	}
	data, err := json.Marshal(line)
	if err != nil {
		log.Printf("event %s: %v", event, err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dead {
		return
	}
	if _, err := os.Stdout.Write(append(data, '\n')); err != nil {
		e.dead = true
		if e.gone != nil {
			go e.gone()
		}
	}
}
