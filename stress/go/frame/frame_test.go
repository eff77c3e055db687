package frame

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131) ^ seed
	}
	return b
}

func TestWriteFrame_PrefixesLittleEndianU32Length(t *testing.T) {
	cases := []struct {
		size int
		hdr  []byte
	}{
		{0, []byte{0, 0, 0, 0}},
		{3, []byte{3, 0, 0, 0}},
		{256, []byte{0, 1, 0, 0}},
		{65536, []byte{0, 0, 1, 0}},
		{0x01020304 & 0xfffff, []byte{0x04, 0x03, 0x02, 0x00}},
	}
	for _, tc := range cases {
		payload := pattern(tc.size, 7)
		var buf bytes.Buffer
		if err := WriteFrame(&buf, payload); err != nil {
			t.Fatalf("size %d: %v", tc.size, err)
		}
		got := buf.Bytes()
		if len(got) != HeaderSize+tc.size {
			t.Fatalf("size %d: wrote %d bytes, want %d", tc.size, len(got), HeaderSize+tc.size)
		}
		if !bytes.Equal(got[:HeaderSize], tc.hdr) {
			t.Errorf("size %d: header % x, want % x", tc.size, got[:HeaderSize], tc.hdr)
		}
		if !bytes.Equal(got[HeaderSize:], payload) {
			t.Errorf("size %d: payload differs", tc.size)
		}
	}
}

func TestReadFrame_ReturnsWhatWriteFrameWrote(t *testing.T) {
	sizes := []int{0, 1, 255, 256, 65535, 65536, 1 << 20}
	var stream bytes.Buffer
	for i, n := range sizes {
		if err := WriteFrame(&stream, pattern(n, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	r := iotest.HalfReader(&stream) // short reads must not matter
	for i, n := range sizes {
		got, err := ReadFrame(r, 1<<20)
		if err != nil {
			t.Fatalf("frame %d (%d bytes): %v", i, n, err)
		}
		if !bytes.Equal(got, pattern(n, byte(i))) {
			t.Fatalf("frame %d (%d bytes): payload differs", i, n)
		}
	}
	if _, err := ReadFrame(r, 1<<20); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestReadFrame_ReassemblesOneByteReads(t *testing.T) {
	var stream bytes.Buffer
	WriteFrame(&stream, []byte("hello"))
	WriteFrame(&stream, nil)
	r := iotest.OneByteReader(&stream)
	if got, err := ReadFrame(r, 16); err != nil || string(got) != "hello" {
		t.Fatalf("first frame: %q, %v", got, err)
	}
	if got, err := ReadFrame(r, 16); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("empty frame: %q (nil=%v), %v", got, got == nil, err)
	}
}

func TestReadFrame_EndsOfStream(t *testing.T) {
	cases := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"EmptyStreamIsEOF", nil, io.EOF},
		{"PartialHeaderIsUnexpectedEOF", []byte{5, 0}, io.ErrUnexpectedEOF},
		{"PartialPayloadIsUnexpectedEOF", []byte{5, 0, 0, 0, 'a', 'b'}, io.ErrUnexpectedEOF},
		{"HeaderWithoutPayloadIsUnexpectedEOF", []byte{5, 0, 0, 0}, io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tc.stream), 16)
			if err != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReadFrame_AcceptsExactlyMaxAndRejectsOneMoreWithoutReadingIt(t *testing.T) {
	var stream bytes.Buffer
	WriteFrame(&stream, pattern(100, 1))
	WriteFrame(&stream, pattern(101, 2))
	if got, err := ReadFrame(&stream, 100); err != nil || len(got) != 100 {
		t.Fatalf("frame of max bytes: len %d, %v", len(got), err)
	}
	_, err := ReadFrame(&stream, 100)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("frame of max+1 bytes: %v, want ErrTooLarge", err)
	}
	if stream.Len() != 101 {
		t.Fatalf("%d bytes left after the rejected header, want the 101 of its payload", stream.Len())
	}
}

func TestReadFrame_HugeLengthIsRejectedBeforeAllocating(t *testing.T) {
	_, err := ReadFrame(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), DefaultMaxMessage)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func TestReadFrame_NegativeLimitIsAnError(t *testing.T) {
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 0}), -1); err == nil {
		t.Fatal("a negative limit was accepted")
	}
}

func TestWriteFrame_ReportsWriterErrors(t *testing.T) {
	boom := errors.New("boom")
	if err := WriteFrame(errWriter{boom}, []byte("x")); err != boom {
		t.Fatalf("got %v, want the writer's error", err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }
