// Package frame is a pure-Go implementation of the ipc socket protocol,
// written from its specification (docs/PROTOCOL.md) rather than from the C
// code, so that the compatibility tests check the format, not one
// implementation against itself.
//
// On a Unix stream socket each message travels as one frame: a 4-byte
// little-endian unsigned length, then that many payload bytes. Zero-length
// messages are legal. Every request gets exactly one reply, in order. A peer
// that receives a length over its limit closes the connection at once,
// without reading the payload.
//
// The package has the codec (WriteFrame, ReadFrame), a Client, and a Server
// with one goroutine per connection.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// HeaderSize is the length prefix of every frame.
const HeaderSize = 4

// MaxLimit is the largest payload a frame can carry.
const MaxLimit = 1<<32 - 1

// DefaultMaxMessage is the default limit on one message (1 MiB), as in the C
// library.
const DefaultMaxMessage = 1 << 20

// ErrTooLarge is wrapped by errors for a frame over the limit. After a read
// fails with it the stream is out of sync: the connection must be closed.
var ErrTooLarge = errors.New("frame too large")

// WriteFrame writes payload as one frame. The header and payload go out in
// one writev when w is a net.Conn.
func WriteFrame(w io.Writer, payload []byte) error {
	if uint64(len(payload)) > MaxLimit {
		return fmt.Errorf("frame: write %d bytes: %w", len(payload), ErrTooLarge)
	}
	var hdr [HeaderSize]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(payload)))
	bufs := net.Buffers{hdr[:], payload}
	_, err := bufs.WriteTo(w)
	return err
}

// ReadFrame reads one frame and returns its payload. It returns io.EOF when
// r ends cleanly between frames, io.ErrUnexpectedEOF when it ends inside
// one, and an error wrapping ErrTooLarge (without reading the payload) when
// the length is over max.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	if max < 0 {
		return nil, fmt.Errorf("frame: negative limit %d", max)
	}
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("frame: read %d bytes, limit %d: %w", n, max, ErrTooLarge)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return payload, nil
}
