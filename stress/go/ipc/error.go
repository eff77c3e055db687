package ipc

import (
	"errors"
	"syscall"
)

// ErrClosed is returned (wrapped) by calls on a closed Client or Pool.
var ErrClosed = errors.New("use of closed client")

// Error is a failed C call: Op names it ("connect", "send", "recv",
// "create_socket", "create_shm"), Errno is the positive errno the C API
// returned negated. It unwraps to the Errno, so
// errors.Is(err, syscall.ETIMEDOUT) works.
type Error struct {
	Op    string
	Errno syscall.Errno
}

func (e *Error) Error() string { return "ipc " + e.Op + ": " + strerror(e.Errno) }

// Unwrap returns the errno.
func (e *Error) Unwrap() error { return e.Errno }

// Timeout reports whether the call timed out (net.Error style).
func (e *Error) Timeout() bool { return e.Errno == syscall.ETIMEDOUT }
