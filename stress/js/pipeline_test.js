'use strict';
// The JavaScript client against the C socket server (`ipc serve`), the way the
// upstream JavaScript bindings use it: two writes per request, many requests
// in flight, replies matched in order. Every reply must arrive and match; no
// connection may be dropped. IPC_CLI is the `ipc` binary.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const { Client } = require('./ipc_client.js');
const { burst } = require('./pipeline.js');

const cli = process.env.IPC_CLI;
assert.ok(cli, 'IPC_CLI must name the ipc binary');

// A short directory under /tmp (socket paths hold 107 bytes).
const dir = fs.mkdtempSync(path.join(os.tmpdir().length < 40 ? os.tmpdir() : '/tmp', 'ipcjs.'));
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

// Starts `ipc serve` on a fresh path; resolves once the socket file exists.
async function startServer(name, extra = []) {
  const sock = path.join(dir, name);
  const proc = spawn(cli, ['serve', '--socket', sock, ...extra], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
  for (let i = 0; i < 400 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(fs.existsSync(sock), `${sock} never appeared`);
  return {
    sock,
    async stop() {
      proc.kill('SIGTERM');
      const { code, sig } = await exited;
      assert.equal(code, 0, `ipc serve exited ${code} (${sig})`);
    },
  };
}

test('2 000 pipelined requests of 0 B to 300 KB, twice written, 8 runs: every reply matched', async () => {
  const server = await startServer('burst.sock');
  try {
    for (let run = 0; run < 8; run++) {
      const res = await burst(server.sock, 2000, 300 * 1024, 0x9e3779b9 + run);
      assert.ok(res.ok, `run ${run}: ${res.ok || res.error.message}`);
    }
  } finally {
    await server.stop();
  }
});

test('four clients bursting at once, one write per request for two of them', async () => {
  const server = await startServer('four.sock');
  try {
    const runs = [0, 1, 2, 3].map((k) => burst(server.sock, 500, 200 * 1024, 77 + k, { twoWrites: k % 2 === 0 }));
    for (const [k, res] of (await Promise.all(runs)).entries()) assert.ok(res.ok, `client ${k}: ${res.ok || res.error.message}`);
  } finally {
    await server.stop();
  }
});

test('a client that stops reading for a while is held, then gets every reply; others are served meanwhile', async () => {
  const server = await startServer('slow.sock');
  try {
    const slow = await Client.connect(server.sock);
    const other = await Client.connect(server.sock);
    slow.pause();
    const big = Buffer.alloc(256 * 1024, 0x5a);
    const owed = [];
    for (let i = 0; i < 64; i++) owed.push(slow.request(big));
    // 16 MiB in flight against a 2 MiB + 64 KiB bound: the server holds it.
    for (let i = 0; i < 20; i++) {
      const m = Buffer.from(`ping ${i}`);
      assert.deepEqual(await other.request(m), m);
    }
    await new Promise((r) => setTimeout(r, 200));
    slow.resume();
    for (const reply of await Promise.all(owed)) assert.ok(reply.equals(big));
    assert.deepEqual(await slow.request(Buffer.from('still here')), Buffer.from('still here'));
    await slow.close();
    await other.close();
  } finally {
    await server.stop();
  }
});

test('connecting the moment the socket file exists is never refused', async () => {
  // The upstream client connects as soon as the file appears: the server
  // must already accept then. 30 server starts, each raced by a tight loop.
  let refused = 0, connected = 0;
  for (let i = 0; i < 30; i++) {
    const sock = path.join(dir, `race${i}.sock`);
    const proc = spawn(cli, ['serve', '--socket', sock], { stdio: 'ignore' });
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    for (let spin = 0; spin < 1e6 && !fs.existsSync(sock); spin++) {
      if (spin % 64 === 63) await new Promise((r) => setImmediate(r));
    }
    const err = await new Promise((resolve) => {
      const s = net.createConnection({ path: sock });
      s.once('connect', () => { s.destroy(); resolve(null); });
      s.once('error', resolve);
    });
    if (err === null) connected++;
    else if (err.code === 'ECONNREFUSED') refused++;
    else assert.fail(`connect: ${err.message}`);
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
  }
  assert.equal(refused, 0, `${refused} of 30 connects refused`);
  assert.equal(connected, 30);
});
