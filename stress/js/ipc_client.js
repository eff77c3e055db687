'use strict';
// A pure JavaScript client of the ipc socket protocol (docs/PROTOCOL.md),
// written from that page alone: Node's `net` module, no npm packages.
//
// Each direction of a Unix stream socket carries frames: a 4-byte
// little-endian unsigned length, then exactly that many payload bytes. The
// server answers a connection's requests in the order they arrived, so a
// client may keep many requests in flight and match replies first in, first
// out.
const net = require('node:net');

const HEADER = 4;
const DEFAULT_MAX_MESSAGE = 1 << 20;
const MAX_MESSAGE_LIMIT = 0xffffffff;

// The 4-byte header of a frame of len payload bytes.
function encodeHeader(len) {
  if (!Number.isInteger(len) || len < 0 || len > MAX_MESSAGE_LIMIT)
    throw new RangeError(`frame length ${len} is outside 0..2^32-1`);
  const h = Buffer.allocUnsafe(HEADER);
  h.writeUInt32LE(len, 0);
  return h;
}

// Reassembles frames from chunks split and coalesced anyhow. push() returns
// the payloads it completed; a length above maxMessage throws, because after
// it the stream cannot be trusted (the server closes on one too).
class FrameReader {
  constructor(maxMessage = DEFAULT_MAX_MESSAGE) {
    this.maxMessage = maxMessage;
    this.chunks = [];
    this.buffered = 0;
    this.need = -1; // payload length of the frame being read, -1 before its header
  }

  // Removes and returns the first n buffered bytes as one Buffer.
  take(n) {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0];
    if (first.length === n) {
      this.chunks.shift();
      this.buffered -= n;
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }

  push(chunk) {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames = [];
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < HEADER) break;
        const len = this.take(HEADER).readUInt32LE(0);
        if (len > this.maxMessage) {
          const err = new RangeError(`frame of ${len} bytes exceeds maxMessage ${this.maxMessage}`);
          err.code = 'EMSGSIZE';
          throw err;
        }
        this.need = len;
      }
      if (this.buffered < this.need) break;
      frames.push(this.take(this.need));
      this.need = -1;
    }
    return frames;
  }

  // Bytes of a frame received but not yet whole (a close now loses them).
  pending() {
    return this.buffered + (this.need >= 0 ? HEADER : 0);
  }
}

// A pipelining client: request() may be called many times without waiting;
// each promise resolves with the reply to its request, in order. Any failure
// (the server closing, a bad frame) rejects every request in flight, and the
// client is then unusable: close it and connect again.
class Client {
  constructor(socket, options) {
    this.socket = socket;
    this.reader = new FrameReader(options.maxMessage ?? DEFAULT_MAX_MESSAGE);
    // Two writes per request (header, then payload), as the upstream
    // JavaScript bindings do; false sends one concatenated write.
    this.twoWrites = options.twoWrites ?? true;
    this.waiting = []; // {resolve, reject} per request in flight, oldest first
    this.failure = null;
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => {
      const err = new Error(`connection closed with ${this.waiting.length} replies owed`);
      err.code = 'ECONNRESET';
      this.fail(err);
    });
  }

  // Connects to the server at path. Resolves with a Client.
  static connect(path, options = {}) {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path });
      const onError = (err) => reject(err);
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.removeListener('error', onError);
        resolve(new Client(socket, options));
      });
    });
  }

  onData(chunk) {
    let frames;
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this.fail(err);
      this.socket.destroy();
      return;
    }
    for (const f of frames) {
      const w = this.waiting.shift();
      if (w === undefined) {
        const err = new Error('the server sent a frame that answers no request');
        err.code = 'EPROTO';
        this.fail(err);
        this.socket.destroy();
        return;
      }
      w.resolve(f);
    }
  }

  fail(err) {
    if (this.failure === null) this.failure = err;
    const owed = this.waiting;
    this.waiting = [];
    for (const w of owed) w.reject(this.failure);
  }

  // Sends payload (a Buffer or Uint8Array) as one request; resolves with the
  // reply's payload.
  request(payload) {
    if (this.failure !== null) return Promise.reject(this.failure);
    const hdr = encodeHeader(payload.length);
    const p = new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
    if (this.twoWrites) {
      this.socket.write(hdr);
      if (payload.length > 0) this.socket.write(payload);
    } else {
      this.socket.write(Buffer.concat([hdr, payload]));
    }
    return p;
  }

  // Requests in flight.
  inFlight() {
    return this.waiting.length;
  }

  // Stops or resumes reading replies (a slow reader, for tests).
  pause() { this.socket.pause(); }
  resume() { this.socket.resume(); }

  // Closes the connection; requests in flight are rejected.
  close() {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
    });
  }
}

module.exports = { HEADER, DEFAULT_MAX_MESSAGE, MAX_MESSAGE_LIMIT, encodeHeader, FrameReader, Client };
