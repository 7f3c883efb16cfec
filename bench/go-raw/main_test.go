package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// startEtcd runs a real etcd on free loopback ports with a throwaway data dir, stopped at the end.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (scripts/ensure-etcd.sh installs it)")
	}
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", port())
	peer := fmt.Sprintf("http://127.0.0.1:%d", port())
	cmd := exec.Command(bin, "--data-dir", t.TempDir(), "--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "default="+peer)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "probe")
		cancel()
		if err == nil {
			return client
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd at %s not ready: %v", client, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Every Txn the raw rate counts is one that created its own key: the figure is of writes etcd applied.
func TestEveryCountedTxnCreatedItsKey(t *testing.T) {
	endpoint := startEtcd(t)
	res, err := run([]string{endpoint}, 500, 8, 64, "test/")
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 500 || res.Failed != 0 || res.PerSecond <= 0 {
		t.Fatalf("unexpected result %+v", res)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	got, err := cli.Get(context.Background(), "test/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if got.Count != 500 {
		t.Fatalf("%d keys written, want 500", got.Count)
	}
}

// A second run over the same prefix finds every key taken: its compares fail and are reported, not counted as writes.
func TestTxnsOnExistingKeysAreReportedAsFailed(t *testing.T) {
	endpoint := startEtcd(t)
	if _, err := run([]string{endpoint}, 50, 4, 8, "again/"); err != nil {
		t.Fatal(err)
	}
	res, err := run([]string{endpoint}, 50, 4, 8, "again/")
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 50 {
		t.Fatalf("failed = %d, want 50", res.Failed)
	}
}

