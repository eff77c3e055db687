// Package ipc is a cgo binding of the C client of the ipc library (ipc/ipc.h).
//
// Building it needs the C library, found through pkg-config (ipc.pc): an
// install made by tools/install.sh --prefix PREFIX is found with
// PKG_CONFIG_PATH=PREFIX/lib/pkgconfig. Under Bazel, stress/go/go_test.sh
// writes an ipc.pc that names Bazel's static archives.
//
// Concurrency: a Client is for one goroutine at a time, like the C client is
// for one thread at a time. Close must not race with any other call. Pool
// shares several clients among many goroutines.
//
// Memory: Send and Recv pass the caller's slice to C for the length of the
// call only; the C client copies what it keeps (the unsent rest of a timed-out
// frame, a partly received reply), so no Go pointer outlives a call.
package ipc

/*
#cgo pkg-config: ipc
#include <stdlib.h>
#include "ipc/ipc.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// MaxMessageLimit is the largest message the framing can carry.
const MaxMessageLimit = 1<<32 - 1

// DefaultMaxMessage is the default request limit of a C server (1 MiB).
const DefaultMaxMessage = 1 << 20

// Version is the C library's version (ipc_version()), e.g. "0.1.0".
func Version() string { return C.GoString(C.ipc_version()) }

// Client is a connection to one server, over a Unix socket or shared memory.
type Client struct {
	c *C.ipc_client
}

// NewSocketClient returns an unconnected client of the socket server at path
// (at most 107 bytes; a longer path is EINVAL, never truncated).
func NewSocketClient(path string) (*Client, error) {
	if strings.IndexByte(path, 0) >= 0 {
		return nil, &Error{Op: "create_socket", Errno: syscall.EINVAL}
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	return newClient("create_socket", C.ipc_client_create_socket(cpath))
}

// NewShmClient returns an unconnected client of the shared-memory server
// name, which serves maxClients clients (must match the server's).
func NewShmClient(name string, maxClients int) (*Client, error) {
	if strings.IndexByte(name, 0) >= 0 || maxClients <= 0 {
		return nil, &Error{Op: "create_shm", Errno: syscall.EINVAL}
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	return newClient("create_shm", C.ipc_client_create_shm(cname, C.size_t(maxClients)))
}

// newClient wraps a factory result; the C factories return NULL only for
// invalid arguments (or when out of memory), hence EINVAL.
func newClient(op string, c *C.ipc_client) (*Client, error) {
	if c == nil {
		return nil, &Error{Op: op, Errno: syscall.EINVAL}
	}
	cl := &Client{c: c}
	// A safety net for a Client dropped without Close.
	runtime.SetFinalizer(cl, (*Client).Close)
	return cl, nil
}

// Connect connects the client. Typical errors: ENOENT or ECONNREFUSED (no
// server), EISCONN (already connected), EAGAIN (no free shared-memory slot),
// EPROTO (another protocol version).
func (c *Client) Connect() error {
	if c.c == nil {
		return closedError("connect")
	}
	rc := C.ipc_client_connect(c.c)
	runtime.KeepAlive(c)
	return check("connect", int64(rc))
}

// Send sends one message; timeout 0 waits without limit. ETIMEDOUT means
// nothing of the message was sent; ECONNRESET or EPIPE that the server is
// gone; ENOTCONN that the client is not connected.
func (c *Client) Send(msg []byte, timeout time.Duration) error {
	if c.c == nil {
		return closedError("send")
	}
	ns, err := timeoutNS("send", timeout)
	if err != nil {
		return err
	}
	rc := C.ipc_client_send(c.c, bytesPtr(msg), C.size_t(len(msg)), ns)
	runtime.KeepAlive(c)
	runtime.KeepAlive(msg)
	return check("send", int64(rc))
}

// Recv receives one message into buf and returns its length; timeout 0 waits
// without limit. ETIMEDOUT: nothing arrived in time (a partial message is
// kept for the next call). EMSGSIZE: the message was longer than buf and is
// discarded whole. ECONNRESET: the server is gone.
func (c *Client) Recv(buf []byte, timeout time.Duration) (int, error) {
	if c.c == nil {
		return 0, closedError("recv")
	}
	ns, err := timeoutNS("recv", timeout)
	if err != nil {
		return 0, err
	}
	n := C.ipc_client_recv(c.c, bytesPtr(buf), C.size_t(len(buf)), ns)
	runtime.KeepAlive(c)
	runtime.KeepAlive(buf)
	if err := check("recv", int64(n)); err != nil {
		return 0, err
	}
	return int(n), nil
}

// Disconnect closes the connection but keeps the client, which may Connect
// again. Idempotent.
func (c *Client) Disconnect() {
	if c.c == nil {
		return
	}
	C.ipc_client_close(c.c)
	runtime.KeepAlive(c)
}

// Close disconnects and frees the client. Idempotent; every other call on a
// closed client fails with ErrClosed.
func (c *Client) Close() error {
	if c.c == nil {
		return nil
	}
	C.ipc_client_destroy(c.c)
	c.c = nil
	runtime.SetFinalizer(c, nil)
	return nil
}

// bytesPtr is the C view of b: NULL for an empty slice, which the C API
// accepts with length 0.
func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func timeoutNS(op string, d time.Duration) (C.uint64_t, error) {
	if d < 0 {
		return 0, &Error{Op: op, Errno: syscall.EINVAL}
	}
	return C.uint64_t(d.Nanoseconds()), nil
}

// check turns a C return value (>= 0 or -errno) into an error.
func check(op string, rc int64) error {
	if rc >= 0 {
		return nil
	}
	return &Error{Op: op, Errno: syscall.Errno(-rc)}
}

func closedError(op string) error {
	return fmt.Errorf("ipc %s: %w", op, ErrClosed)
}

// strerror is the library's text for errno.
func strerror(errno syscall.Errno) string {
	return C.GoString(C.ipc_strerror(-C.int(errno)))
}
