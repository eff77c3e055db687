package compat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"ipcgo/frame"
	"ipcgo/internal/cserver"
)

// TestMatrix: every client implementation against every server
// implementation it can talk to, each exchanging matrixSizes both ways.
func TestMatrix(t *testing.T) {
	t.Run("CgoClient_CServer_Socket", func(t *testing.T) {
		s := cserver.StartSocket(t, 0)
		exchangeSizes(t, newCgoSocket(t, s.Socket))
	})
	t.Run("GoClient_CServer_Socket", func(t *testing.T) {
		s := cserver.StartSocket(t, 0)
		exchangeSizes(t, newGoClient(t, s.Socket))
	})
	t.Run("CgoClient_GoServer_Socket", func(t *testing.T) {
		s := startGoServer(t, 0)
		exchangeSizes(t, newCgoSocket(t, s.Addr()))
	})
	t.Run("GoClient_GoServer_Socket", func(t *testing.T) {
		s := startGoServer(t, 0)
		exchangeSizes(t, newGoClient(t, s.Addr()))
	})
	t.Run("CgoClient_CServer_Shm", func(t *testing.T) {
		s := cserver.StartShm(t, 4)
		exchangeSizes(t, newCgoShm(t, s))
	})
}

// Several clients of different kinds on one C server at once, interleaved.
func TestMatrix_MixedClientsShareOneCServer(t *testing.T) {
	s := cserver.StartSocket(t, 0)
	clients := []exchanger{
		newCgoSocket(t, s.Socket), newGoClient(t, s.Socket),
		newCgoSocket(t, s.Socket), newGoClient(t, s.Socket),
	}
	for seq := 0; seq < 200; seq++ {
		msg := pattern(seq*37%5000, uint64(seq))
		got, err := clients[seq%len(clients)].roundTrip(msg)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		if err := sameBytes(got, msg); err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
	}
}

// The C server reassembles frames from arbitrary fragments and answers
// pipelined requests in order: the stream, not the write calls, carries
// the framing.
func TestGoClientToCServer_PipelinedAndFragmentedFramesAreEchoedInOrder(t *testing.T) {
	s := cserver.StartSocket(t, 0)
	c, err := frame.Dial(s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var stream bytes.Buffer
	var want [][]byte
	for seq, n := range []int{0, 5, 300, 0, 70000, 1, 4096} {
		msg := pattern(n, uint64(seq))
		want = append(want, msg)
		frame.WriteFrame(&stream, msg)
	}
	raw := stream.Bytes()
	// Odd-sized chunks, so boundaries fall inside headers and payloads.
	for off, step := 0, 1; off < len(raw); step = step*3 + 1 {
		end := off + step%9973
		if end > len(raw) || step%9973 == 0 {
			end = len(raw)
		}
		if _, err := c.Conn().Write(raw[off:end]); err != nil {
			t.Fatal(err)
		}
		off = end
	}
	for i, msg := range want {
		got, err := c.Recv(timeout)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if err := sameBytes(got, msg); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
}

// A request over the C server's max message size: the server disconnects
// that client (no hang, no reply) and goes on serving others.
func TestGoClientToCServer_RequestOverMaxMessageIsDisconnectedCleanly(t *testing.T) {
	const max = 1024
	s := cserver.StartSocket(t, max)

	t.Run("WholeFrame", func(t *testing.T) {
		c := newGoClient(t, s.Socket)
		if got, err := c.roundTrip(pattern(max, 1)); err != nil || len(got) != max {
			t.Fatalf("request of exactly max: len %d, %v", len(got), err)
		}
		if err := c.c.Send(pattern(max+1, 2), timeout); err != nil {
			t.Fatalf("send: %v", err)
		}
		wantDisconnected(t, c.c)
	})
	for _, length := range []uint32{1 << 31, 0xFFFFFFFF} {
		t.Run(fmt.Sprintf("HeaderOnlyClaiming%#x", length), func(t *testing.T) {
			// The length alone must be enough: the payload never comes.
			c := newGoClient(t, s.Socket)
			var hdr [frame.HeaderSize]byte
			binary.LittleEndian.PutUint32(hdr[:], length)
			if _, err := c.c.Conn().Write(hdr[:]); err != nil {
				t.Fatal(err)
			}
			wantDisconnected(t, c.c)
		})
	}
	t.Run("ServerStillServesOthers", func(t *testing.T) {
		if s.Exited() {
			t.Fatal("the C server exited")
		}
		c := newGoClient(t, s.Socket)
		for seq, n := range []int{0, 1, 255, 256, max} {
			msg := pattern(n, uint64(seq))
			got, err := c.roundTrip(msg)
			if err != nil {
				t.Fatalf("%d bytes: %v", n, err)
			}
			if err := sameBytes(got, msg); err != nil {
				t.Fatalf("%d bytes: %v", n, err)
			}
		}
	})
}

// wantDisconnected: the next read ends the connection within the timeout
// (EOF or ECONNRESET), instead of a reply or a hang.
func wantDisconnected(t *testing.T, c *frame.Client) {
	t.Helper()
	got, err := c.Recv(timeout)
	switch {
	case err == io.EOF, errors.Is(err, syscall.ECONNRESET):
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("no disconnect after %v: the server hangs on the oversized frame", timeout)
	default:
		t.Fatalf("got reply of %d bytes, err %v; want the connection closed", len(got), err)
	}
}

// The cgo client sees a pure-Go server that drops it as the C API says:
// ECONNRESET, even with an unlimited timeout.
func TestCgoClientToGoServer_RequestOverMaxMessageIsECONNRESET(t *testing.T) {
	s := startGoServer(t, 1024)
	c := newCgoSocket(t, s.Addr())
	if got, err := c.roundTrip(pattern(1024, 1)); err != nil || len(got) != 1024 {
		t.Fatalf("request of exactly max: len %d, %v", len(got), err)
	}
	if err := c.c.Send(pattern(1025, 2), timeout); err != nil {
		t.Fatalf("send: %v", err)
	}
	_, err := c.c.Recv(c.buf, 0)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("recv: %v, want ECONNRESET", err)
	}
}

// A client that half-closes after its requests still gets every reply, then
// the end of the stream (docs/PROTOCOL.md), from either server.
func TestGoClient_HalfCloseStillGetsEveryReplyThenEOF(t *testing.T) {
	for _, server := range []string{"CServer", "GoServer"} {
		t.Run(server, func(t *testing.T) {
			var path string
			if server == "CServer" {
				path = cserver.StartSocket(t, 0).Socket
			} else {
				path = startGoServer(t, 0).Addr()
			}
			c := newGoClient(t, path)
			var want [][]byte
			for seq, n := range []int{3, 0, 70000} {
				msg := pattern(n, uint64(seq))
				want = append(want, msg)
				if err := c.c.Send(msg, timeout); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.c.Conn().(*net.UnixConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			for i, msg := range want {
				got, err := c.c.Recv(timeout)
				if err != nil {
					t.Fatalf("reply %d: %v", i, err)
				}
				if err := sameBytes(got, msg); err != nil {
					t.Fatalf("reply %d: %v", i, err)
				}
			}
			if got, err := c.c.Recv(timeout); err != io.EOF {
				t.Fatalf("after the last reply: %d bytes, %v; want EOF", len(got), err)
			}
		})
	}
}
