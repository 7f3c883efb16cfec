// Command go-raw measures the write rate one etcd sustains on this machine, independent of Node:
// Txns of one compare (key absent) and one put, the same shape the Node raw phase sends, through
// etcd's own Go client. The txloop bench runs it against the same etcd in the same run and
// prints both rates side by side; see bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type result struct {
	Ops       int     `json:"ops"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"perSecond"`
	CPUMs     float64 `json:"cpuMs"`
	Failed    int64   `json:"failed"`
}

func main() {
	endpoints := flag.String("endpoints", "http://127.0.0.1:2379", "comma-separated etcd endpoints")
	ops := flag.Int("ops", 10000, "Txns to send")
	concurrency := flag.Int("concurrency", 16, "Txns in flight")
	valueSize := flag.Int("value-size", 512, "bytes per put")
	prefix := flag.String("prefix", "txloop-bench/raw-go/", "key prefix (a fresh one per run)")
	flag.Parse()
	if *ops < 1 || *concurrency < 1 || *valueSize < 0 {
		fmt.Fprintln(os.Stderr, "go-raw: --ops and --concurrency must be ≥ 1, --value-size ≥ 0")
		os.Exit(2)
	}
	res, err := run(strings.Split(*endpoints, ","), *ops, *concurrency, *valueSize, *prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-raw:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func run(endpoints []string, ops, concurrency, valueSize int, prefix string) (result, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return result{}, err
	}
	defer cli.Close()
	value := strings.Repeat("x", valueSize)
	ctx := context.Background()
	// One round trip before the clock starts, so connection set-up is not measured.
	if _, err := cli.Get(ctx, prefix+"warmup"); err != nil {
		return result{}, err
	}
	var next, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(ops) {
					return
				}
				key := fmt.Sprintf("%s%d", prefix, i)
				resp, err := cli.Txn(ctx).
					If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
					Then(clientv3.OpPut(key, value)).
					Commit()
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Add(1)
					return
				}
				if !resp.Succeeded {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	seconds := time.Since(start).Seconds()
	if firstErr != nil {
		return result{}, firstErr
	}
	return result{
		Ops:       ops,
		Seconds:   seconds,
		PerSecond: float64(ops) / seconds,
		CPUMs:     float64(cpuTime()-cpu0) / float64(time.Millisecond),
		Failed:    failed.Load(),
	}, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
