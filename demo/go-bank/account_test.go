package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestAccountTccRules(t *testing.T) {
	a := &Account{Name: "B", Balance: 100, Branches: map[string]*Branch{}}
	if _, err := a.Try("debit", "x1", "b1", 60); err != nil {
		t.Fatal(err)
	}
	if changed, err := a.Try("debit", "x1", "b1", 60); changed || err != nil {
		t.Fatalf("a repeated Try: changed %v, %v", changed, err)
	}
	if _, err := a.Try("debit", "x2", "b2", 50); !IsRefusal(err) || !strings.Contains(err.Error(), "insufficient funds: account B has 40 available") {
		t.Fatalf("an overdraft: %v", err)
	}
	if changed, err := a.Confirm("b1"); !changed || err != nil || a.Balance != 40 || a.Frozen != 0 {
		t.Fatalf("confirm: changed %v, %v, %+v", changed, err, a)
	}
	if changed, err := a.Confirm("b1"); changed || err != nil || a.Balance != 40 {
		t.Fatalf("a repeated confirm: changed %v, %v, balance %d", changed, err, a.Balance)
	}
	if _, _, err := a.Cancel("debit", "x1", "b1"); err == nil {
		t.Fatal("a cancel after the confirm went through")
	}
	// A cancel before (or without) its Try: an empty rollback, and the late Try is refused.
	if changed, empty, err := a.Cancel("debit", "x3", "b3"); !changed || !empty || err != nil {
		t.Fatalf("empty rollback: changed %v, empty %v, %v", changed, empty, err)
	}
	if _, err := a.Try("debit", "x3", "b3", 10); !IsRefusal(err) {
		t.Fatalf("a late Try: %v", err)
	}
	if _, err := a.Try("credit", "x4", "b4", 5); err != nil {
		t.Fatal(err)
	}
	if changed, empty, err := a.Cancel("credit", "x4", "b4"); !changed || empty || err != nil || a.Incoming != 0 {
		t.Fatalf("cancel of a credit: changed %v, empty %v, %v, incoming %d", changed, empty, err, a.Incoming)
	}
	if _, err := a.Confirm("b5"); err == nil {
		t.Fatal("a confirm without its Try went through")
	}
}

func TestAccountSavedAndLoaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "account.json")
	a := &Account{Name: "B", Balance: 100, Branches: map[string]*Branch{}}
	if _, err := a.Try("debit", "x1", "b1", 30); err != nil {
		t.Fatal(err)
	}
	if err := a.save(path); err != nil {
		t.Fatal(err)
	}
	got, err := loadAccount(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Balance != 100 || got.Frozen != 30 || got.Branches["b1"].Phase != "tried" {
		t.Fatalf("loaded %+v", got)
	}
}
