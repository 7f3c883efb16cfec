package txloop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	txloop "github.com/txloop/txloop/clients/go"
)

// Leg is the payload of the examples' debit resource.
type Leg struct {
	Account string `json:"account"`
	Amount  int    `json:"amount"`
}

// A participant service (the bank) and an initiator (the shop), each beside its own sidecar.
func Example() {
	// The bank: its sidecar runs with --service-url http://127.0.0.1:8081 and a resources file
	//   resources: { debit: { confirm: /debit/confirm, cancel: /debit/cancel } }
	bank, err := txloop.New(txloop.WithBaseURL("http://127.0.0.1:7481"))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	// The Try: registered with the sidecar before it runs, its outcome reported after.
	mux.Handle("/debit/try", bank.Participant("debit", nil)(txloop.TryFunc(func(w http.ResponseWriter, r *http.Request) error {
		var leg Leg
		if err := json.NewDecoder(r.Body).Decode(&leg); err != nil {
			return err // reported failed; the caller gets 424
		}
		return freeze(r.Context(), txloop.BranchID(r.Context()), leg) // the context ends at the deadline
	})))
	// Phase 2, called back by the sidecar's leader: idempotent, keyed by the branch id.
	mux.Handle("/debit/confirm", txloop.CallbackHandler(txloop.TypedCallback(func(ctx context.Context, cb *txloop.Callback, leg Leg) error {
		return applyFrozen(ctx, cb.BranchID, leg) // nil → 204; an error → 500, retried
	}), nil))
	mux.Handle("/debit/cancel", txloop.CallbackHandler(func(ctx context.Context, cb *txloop.Callback) error {
		if cb.TryState == txloop.TryStateFailed {
			return txloop.ErrGone // nothing was frozen: 410, counted as done
		}
		return unfreezeIfFrozen(ctx, cb.BranchID)
	}, nil))
	go func() { log.Fatal(http.ListenAndServe("127.0.0.1:8081", mux)) }()

	// The shop: begin, call the Try with the transaction's headers, commit (or roll back on error).
	shop, err := txloop.New(txloop.WithBaseURL("http://127.0.0.1:7480"))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	xid, err := shop.RunTransaction(ctx, txloop.BeginRequest{Name: "A pays C 30", Timeout: 10 * time.Second},
		func(ctx context.Context, tx *txloop.Begun) error {
			body, _ := json.Marshal(Leg{Account: "A", Amount: 30})
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:8081/debit/try", bytes.NewReader(body))
			tx.SetHeaders(req.Header)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("the Try answered %d", res.StatusCode)
			}
			return nil
		})
	if err != nil {
		log.Fatal(err)
	}
	done, err := shop.WaitForCompletion(ctx, xid) // optional: until the confirms ran
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(done.Status) // COMMITTED
}

// Problems answered by the sidecar match their names with errors.Is, and carry their fields.
func ExampleProblem() {
	shop, _ := txloop.New()
	err := shop.Commit(context.Background(), "shop.0mx54t4negaxpzxkj")
	var p *txloop.Problem
	switch {
	case err == nil:
		fmt.Println("committed")
	case errors.Is(err, txloop.ErrTransactionAlreadyDecided) && errors.As(err, &p):
		fmt.Println("already decided:", p.Outcome, "by", p.DecidedBy)
	case errors.Is(err, txloop.ErrDeadlineExceeded):
		fmt.Println("too late: it rolls back on its own")
	case txloop.IsNotFound(err):
		fmt.Println("no such transaction")
	default:
		fmt.Println("not decided:", err) // a transport error keeps context.DeadlineExceeded etc. in its chain
	}
}

// A saga whose second group runs two steps concurrently; a step's action that returns a
// NonRetryable error compensates the saga at once.
func ExampleClient_Saga() {
	shop, _ := txloop.New()
	ctx := context.Background()
	s, err := shop.Saga(ctx, txloop.SagaRequest{Name: "checkout order 42", Timeout: time.Minute, Steps: []txloop.SagaGroup{
		{{Service: "order", Resource: "create", Payload: map[string]int{"order": 42}}},
		{{Service: "inventory", Resource: "reserve"}, {Service: "shipping", Resource: "book"}},
		{{Service: "payment", Resource: "charge", Payload: map[string]string{"amount": "59.90"}}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	done, err := shop.WaitForCompletion(ctx, s.Xid)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(done.Status) // SUCCEEDED or COMPENSATED
}

// A 2-phase message: prepared, the local transaction, submitted; the check-back answers for a
// producer that died in between.
func ExampleClient_RunMessage() {
	shop, _ := txloop.New()
	http.Handle("/checkback/order-paid", txloop.CheckBackHandler(func(ctx context.Context, cb *txloop.CheckBack) (txloop.CheckBackAnswer, error) {
		return orderPaid(ctx, cb.Xid) // from your own table: committed, rolled-back or unknown
	}, nil))
	_, err := shop.RunMessage(context.Background(), txloop.MessageRequest{
		Name:      "order paid",
		Consumers: []txloop.MessageConsumer{{Service: "mail", Resource: "receipt", Payload: map[string]int{"order": 42}}},
	}, func(ctx context.Context, msg *txloop.PreparedMessage) error {
		return markPaid(ctx, 42, msg.Xid) // your local transaction, recording msg.Xid with it
	})
	if err != nil {
		log.Fatal(err)
	}
}

func freeze(context.Context, string, Leg) error      { return nil }
func applyFrozen(context.Context, string, Leg) error { return nil }
func unfreezeIfFrozen(context.Context, string) error { return nil }
func markPaid(context.Context, int, string) error    { return nil }
func orderPaid(context.Context, string) (txloop.CheckBackAnswer, error) {
	return txloop.AnswerUnknown, nil
}
