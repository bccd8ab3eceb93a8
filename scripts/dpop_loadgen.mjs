// Closed-loop load of DPoP token requests (RFC 9449 §5) for scripts/bench_anchor.py: every request
// carries a fresh DPoP proof (new jti, current iat) signed with one P-256 key, over keep-alive
// connections (undici Pool), authenticated with client_secret_basic. The anchor's loadgen.mjs
// cannot add a per-request header; this one is ours, and measures certbound and oidc-provider
// alike. It runs from a copy in the anchor's work directory, whose node_modules holds undici.
//
//   node dpop_loadgen.mjs --url https://127.0.0.1:9443/token --htu https://localhost:9443/token \
//        --basic client:secret --body 'grant_type=client_credentials' --conns 32 --duration 12 --warmup 3
//   node dpop_loadgen.mjs --print-proof --htu https://localhost:9443/token   (one proof and its jkt)
//
// --new-conn: `Connection: close` on every request and no TLS session cache, so each request pays a
// full handshake (as the anchor's loadgen.mjs --new-conn does; scripts/bench_methods.py uses it).
//
// --host sets the Host header (default: the htu's host), so a server that derives the expected htu
// from the request (oidc-provider) and one that derives it from its issuer (certbound) both see the
// same URL. Prints one JSON object like loadgen.mjs: {requests, ok, rps, ok_rps, p50_ms, ...,
// errors, non2xx, status}.
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    url: { type: 'string' },
    htu: { type: 'string' },
    host: { type: 'string' },
    conns: { type: 'string', default: '32' },
    duration: { type: 'string', default: '12' },
    warmup: { type: 'string', default: '0' },
    body: { type: 'string', default: 'grant_type=client_credentials' },
    basic: { type: 'string' },
    servername: { type: 'string', default: 'localhost' },
    'print-proof': { type: 'boolean', default: false },
    'new-conn': { type: 'boolean', default: false },
  },
});

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const header = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } });
// RFC 7638: the required members in lexicographic order, no whitespace.
const jkt = createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');

function proof() {
  const claims = b64({ jti: randomUUID(), htm: 'POST', htu: o.htu, iat: Math.floor(Date.now() / 1000) });
  const input = `${header}.${claims}`;
  const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

if (o['print-proof']) {
  console.log(JSON.stringify({ proof: proof(), jkt }));
  process.exit(0);
}

const { Pool } = await import('undici');

const url = new URL(o.url);
const conns = Number(o.conns);
const durationMs = Number(o.duration) * 1000;
const warmupMs = Number(o.warmup) * 1000;
const headers = {
  'content-type': 'application/x-www-form-urlencoded',
  host: o.host ?? new URL(o.htu).host,
};
if (o.basic) headers.authorization = `Basic ${Buffer.from(o.basic).toString('base64')}`;

const connect = { rejectUnauthorized: false, servername: o.servername };
if (o['new-conn']) connect.maxCachedSessions = 0;
const pool = new Pool(url.origin, {
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
    const started = performance.now();
    try {
      const response = await pool.request({
        path: url.pathname, method: 'POST', headers: { ...headers, dpop: proof() }, body: o.body,
        reset: o['new-conn'],
      });
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
  tool: 'dpop_loadgen.mjs',
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
  jkt,
}));
