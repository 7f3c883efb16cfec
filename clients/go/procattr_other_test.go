//go:build !linux

package txloop_test

import "os/exec"

// startChild starts cmd (only Linux has a parent-death signal for the children).
func startChild(cmd *exec.Cmd) error { return cmd.Start() }
