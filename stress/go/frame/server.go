package frame

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"sync"
)

// Handler computes the reply to one request. It runs on the goroutine of
// the request's connection, so it may be called concurrently for different
// connections. request is the handler's to keep.
type Handler func(request []byte) (reply []byte)

// Echo replies with the request.
func Echo(request []byte) []byte { return request }

// Server serves the socket protocol with one goroutine per connection.
type Server struct {
	handler    Handler
	maxMessage int
	ln         net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Listen starts a server on a new Unix socket at path, serving handler.
// A request longer than maxMessage (0: DefaultMaxMessage) closes its
// connection.
func Listen(path string, maxMessage int, handler Handler) (*Server, error) {
	if maxMessage <= 0 {
		maxMessage = DefaultMaxMessage
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	s := &Server{handler: handler, maxMessage: maxMessage, ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr is the socket path.
func (s *Server) Addr() string { return s.ln.Addr().String() }

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed (or a fatal listener error)
		}
		if !s.track(conn) {
			conn.Close()
			return
		}
		s.wg.Add(1)
		go s.serve(conn)
	}
}

// track records conn so Close can reach it; false once the server is closed.
func (s *Server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[conn] = struct{}{}
	return true
}

func (s *Server) serve(conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	r := bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	for {
		// Any read error ends the connection: EOF, a short frame, or a frame
		// over the limit (its payload is never read, the stream is lost).
		req, err := ReadFrame(r, s.maxMessage)
		if err != nil {
			return
		}
		if err := WriteFrame(w, s.handler(req)); err != nil {
			return
		}
		// Replies to pipelined requests that are already whole in the buffer
		// go out together; otherwise flush, as the client may be waiting.
		if !wholeFrameBuffered(r) {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// Close stops accepting, closes every connection, waits for their
// goroutines and removes the socket file. Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for conn := range s.conns {
		conn.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// wholeFrameBuffered reports whether r holds a complete frame already, so
// reading it cannot block.
func wholeFrameBuffered(r *bufio.Reader) bool {
	if r.Buffered() < HeaderSize {
		return false // Peek would block
	}
	hdr, err := r.Peek(HeaderSize)
	if err != nil {
		return false
	}
	return uint64(r.Buffered()-HeaderSize) >= uint64(binary.LittleEndian.Uint32(hdr))
}
