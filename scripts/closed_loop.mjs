// The closed loop our node load generators share (dpop_loadgen.mjs, secret_jwt_loadgen.mjs): `conns`
// undici connections, one request in flight on each, a warm-up, then `durationMs` measured; prints
// one JSON object like the anchor's loadgen.mjs ({requests, ok, rps, ok_rps, p50_ms, ..., errors,
// non2xx, status}) plus `extra`. `request()` makes each request's {headers, body}; building it is
// not timed. Runs from a copy in the anchor's work directory, whose node_modules holds undici.
//
// newConn: `Connection: close` on every request and no TLS session cache, so each request pays a
// full handshake (as the anchor's loadgen.mjs --new-conn does).
import { performance } from 'node:perf_hooks';

export async function runClosedLoop({ url, conns, durationMs, warmupMs, servername, newConn, request, tool, extra = {} }) {
  const { Pool } = await import('undici');
  const target = new URL(url);
  const connect = { rejectUnauthorized: false, servername };
  if (newConn) connect.maxCachedSessions = 0;
  const pool = new Pool(target.origin, {
    connections: conns,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 600_000,
    connect,
  });

  const latencies = [];
  const status = {};
  const errorSamples = new Set();
  let errors = 0;
  let measuring = false;
  let stop = false;

  async function loop() {
    while (!stop) {
      const { headers, body } = request();
      const started = performance.now();
      try {
        const response = await pool.request({ path: target.pathname, method: 'POST', headers, body, reset: newConn });
        await response.body.text();
        if (measuring) {
          latencies.push(performance.now() - started);
          status[response.statusCode] = (status[response.statusCode] || 0) + 1;
        }
      } catch (error) {
        if (measuring) {
          errors += 1;
          if (errorSamples.size < 3) errorSamples.add(String(error.code || error.message));
        }
      }
    }
  }

  const loops = Array.from({ length: conns }, loop);
  if (warmupMs) await new Promise((resolve) => setTimeout(resolve, warmupMs));
  measuring = true;
  const measuredFrom = performance.now();
  await new Promise((resolve) => setTimeout(resolve, durationMs));
  measuring = false;
  const elapsed = (performance.now() - measuredFrom) / 1000;
  stop = true;
  await Promise.allSettled(loops);
  await pool.destroy();

  latencies.sort((a, b) => a - b);
  const quantile = (q) => (latencies.length
    ? Number(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(3))
    : null);
  const ok = Object.entries(status).filter(([code]) => code.startsWith('2')).reduce((sum, [, n]) => sum + n, 0);
  console.log(JSON.stringify({
    tool,
    requests: latencies.length,
    ok,
    elapsed_s: Number(elapsed.toFixed(3)),
    rps: Number((latencies.length / elapsed).toFixed(1)),
    ok_rps: Number((ok / elapsed).toFixed(1)),
    mean_ms: latencies.length
      ? Number((latencies.reduce((sum, value) => sum + value, 0) / latencies.length).toFixed(3))
      : null,
    p50_ms: quantile(0.5),
    p90_ms: quantile(0.9),
    p99_ms: quantile(0.99),
    max_ms: latencies.length ? Number(latencies.at(-1).toFixed(3)) : null,
    errors,
    non2xx: latencies.length - ok,
    status,
    error_samples: [...errorSamples],
    ...extra,
  }));
}
