'use strict';
// Pipelined bursts against a socket server, the way the upstream JavaScript
// bindings drive it: two writes per request, every request of a burst in
// flight at once, replies matched in order. Used by pipeline_test.js and runnable
// by hand against any echo server:
//   node stress/js/pipeline.js SOCKET_PATH [RUNS] [REQUESTS] [MAX_BYTES]
const { Client } = require('./ipc_client.js');

// Payloads are windows of one pseudo-random pool: request i starts at an
// offset derived from i, so a reply paired with the wrong request differs.
function makePool(bytes, seed) {
  const pool = Buffer.allocUnsafe(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    pool[i] = x & 0xff;
  }
  return pool;
}

// A deterministic size in 0..max for request i of a run (a few of each
// extreme, the rest spread evenly).
function sizeOf(i, max, seed) {
  if (i % 97 === 0) return 0;
  if (i % 89 === 0) return max;
  let x = (Math.imul(i + 1, 2654435761) ^ seed) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 2246822507) >>> 0;
  return x % (max + 1);
}

// One burst: `count` requests sent back to back on a fresh connection, then
// every reply awaited. Resolves with {ok, bytes} or {ok: false, error}.
async function burst(path, count, maxBytes, seed, options = {}) {
  const pool = makePool(maxBytes + 4096, seed);
  const client = await Client.connect(path, options);
  const replies = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const len = sizeOf(i, maxBytes, seed);
    const off = (i * 4099) % 4096;
    const want = pool.subarray(off, off + len);
    bytes += len;
    replies.push(client.request(want).then((got) => {
      if (!got.equals(want))
        throw new Error(`reply ${i}: ${got.length} bytes, want ${len} (or content differs)`);
    }));
  }
  try {
    await Promise.all(replies);
    return { ok: true, bytes };
  } catch (err) {
    return { ok: false, error: err };
  } finally {
    await client.close();
  }
}

module.exports = { makePool, sizeOf, burst };

if (require.main === module) {
  const [path, runs = '8', count = '2000', max = String(300 * 1024)] = process.argv.slice(2);
  (async () => {
    let failed = 0;
    for (let r = 0; r < Number(runs); r++) {
      const t0 = process.hrtime.bigint();
      const res = await burst(path, Number(count), Number(max), 0x9e3779b9 + r);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (!res.ok) failed++;
      console.log(`run ${r}: ${res.ok ? `ok, ${res.bytes} bytes` : `FAILED: ${res.error.message}`} in ${ms.toFixed(0)} ms`);
    }
    console.log(`${failed} of ${runs} runs failed`);
    process.exit(failed ? 1 : 0);
  })();
}
