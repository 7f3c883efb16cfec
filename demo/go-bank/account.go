package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Branch is what a TCC branch did to the account (the same record as demo/accounts.ts keeps for
// the Node banks): tried (amount reserved), confirmed (moved) or cancelled (released, or nothing
// for an empty rollback).
type Branch struct {
	Kind   string `json:"kind"` // debit or credit
	Amount int64  `json:"amount"`
	Phase  string `json:"phase"` // tried, confirmed or cancelled
	Xid    string `json:"xid"`
	// Empty marks a cancel that found no Try: nothing was released, and a late Try is refused.
	Empty bool `json:"empty,omitempty"`
}

// Account is the Go bank's one account, in the shape demo/accounts.ts gives the Node banks'.
type Account struct {
	Name     string             `json:"name"`
	Balance  int64              `json:"balance"`
	Frozen   int64              `json:"frozen"`   // reserved by debit Trys not yet confirmed or cancelled
	Incoming int64              `json:"incoming"` // announced by credit Trys not yet confirmed or cancelled
	Branches map[string]*Branch `json:"branches"`
}

// Refusal is a business rule saying no (not enough money, a late Try): the Try fails for good.
type Refusal struct{ msg string }

func (r *Refusal) Error() string { return r.msg }

func refuse(format string, args ...interface{}) error {
	return &Refusal{fmt.Sprintf(format, args...)}
}

// IsRefusal says whether err is a business refusal.
func IsRefusal(err error) bool {
	var r *Refusal
	return errors.As(err, &r)
}

func (a *Account) available() int64 { return a.Balance - a.Frozen }

// Try reserves amount for the branch: a debit freezes it (when available), a credit announces it.
// A repeated Try of the same branch changes nothing (changed false); a Try of a branch already
// confirmed or cancelled is refused (anti-hanging: its cancel came first).
func (a *Account) Try(kind, xid, branchID string, amount int64) (changed bool, err error) {
	if b := a.Branches[branchID]; b != nil {
		if b.Phase == "tried" {
			return false, nil
		}
		return false, refuse("branch %s was already %s on account %s; a late Try is refused", branchID, b.Phase, a.Name)
	}
	if kind == "debit" {
		if a.available() < amount {
			return false, refuse("insufficient funds: account %s has %d available (balance %d, frozen %d), needs %d", a.Name, a.available(), a.Balance, a.Frozen, amount)
		}
		a.Frozen += amount
	} else {
		a.Incoming += amount
	}
	a.Branches[branchID] = &Branch{Kind: kind, Amount: amount, Phase: "tried", Xid: xid}
	return true, nil
}

// Confirm moves what the branch's Try reserved, with no business checks. Repeated, it changes
// nothing; a branch whose Try is not recorded as tried is an inconsistency: an error (retried).
func (a *Account) Confirm(branchID string) (changed bool, err error) {
	b := a.Branches[branchID]
	if b != nil && b.Phase == "confirmed" {
		return false, nil
	}
	if b == nil || b.Phase != "tried" {
		state := "not recorded"
		if b != nil {
			state = b.Phase
		}
		return false, fmt.Errorf("cannot confirm branch %s on account %s: its Try is %s", branchID, a.Name, state)
	}
	if b.Kind == "debit" {
		a.Frozen -= b.Amount
		a.Balance -= b.Amount
	} else {
		a.Incoming -= b.Amount
		a.Balance += b.Amount
	}
	b.Phase = "confirmed"
	return true, nil
}

// Cancel releases what the branch's Try reserved. With no Try recorded it is an empty rollback
// (empty true): nothing is released, and the branch is marked cancelled so that a late Try is
// refused. Repeated, it changes nothing.
func (a *Account) Cancel(kind, xid, branchID string) (changed, empty bool, err error) {
	b := a.Branches[branchID]
	switch {
	case b == nil:
		a.Branches[branchID] = &Branch{Kind: kind, Phase: "cancelled", Xid: xid, Empty: true}
		return true, true, nil
	case b.Phase == "cancelled":
		return false, b.Empty, nil
	case b.Phase == "confirmed":
		return false, false, fmt.Errorf("cannot cancel branch %s on account %s: it was already confirmed", branchID, a.Name)
	}
	if b.Kind == "debit" {
		a.Frozen -= b.Amount
	} else {
		a.Incoming -= b.Amount
	}
	b.Phase = "cancelled"
	return true, false, nil
}

// save writes the account to path atomically (a temporary file renamed over it).
func (a *Account) save(path string) error {
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".account-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadAccount reads an account saved by save.
func loadAccount(path string) (*Account, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var a Account
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if a.Branches == nil {
		a.Branches = map[string]*Branch{}
	}
	return &a, nil
}

func (a *Account) clone() *Account {
	c := *a
	c.Branches = make(map[string]*Branch, len(a.Branches))
	for id, b := range a.Branches {
		bb := *b
		c.Branches[id] = &bb
	}
	return &c
}
