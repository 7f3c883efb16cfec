package txloop_test

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startChild starts cmd so that the kernel kills it if the test binary dies without its cleanup
// (a test timeout's panic, a SIGKILL). Pdeathsig follows the thread that started the child, so
// that thread is kept for the call.
func startChild(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Start()
}
