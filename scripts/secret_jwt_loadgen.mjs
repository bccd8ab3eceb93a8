// Closed-loop load of client_secret_jwt token requests (OpenID Connect Core §9, RFC 7523 §2.2) for
// scripts/bench_methods.py: every request carries a fresh HS256 client assertion (new jti, current
// iat, exp + 60 s) keyed by the client's secret. The anchor's loadgen.mjs signs only ES256
// private_key_jwt assertions; this one is ours. Like dpop_loadgen.mjs it runs from a copy in the
// anchor's work directory, whose node_modules holds undici.
//
//   node secret_jwt_loadgen.mjs --url https://127.0.0.1:19443/token --client ID --secret S \
//        --aud https://localhost:19443 --body 'grant_type=client_credentials' --conns 32 \
//        --duration 12 --warmup 3 [--new-conn]
//   node secret_jwt_loadgen.mjs --print-assertion --client ID --secret S --aud ISSUER   (one assertion)
//
// --new-conn: `Connection: close` on every request and no TLS session cache, so each request pays a
// full handshake (as loadgen.mjs --new-conn does). Prints one JSON object like loadgen.mjs:
// {requests, ok, rps, ok_rps, p50_ms, ..., errors, non2xx, status}.
import { createHmac, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    url: { type: 'string' },
    client: { type: 'string' },
    secret: { type: 'string' },
    aud: { type: 'string' },
    conns: { type: 'string', default: '32' },
    duration: { type: 'string', default: '12' },
    warmup: { type: 'string', default: '0' },
    body: { type: 'string', default: 'grant_type=client_credentials' },
    servername: { type: 'string', default: 'localhost' },
    'new-conn': { type: 'boolean', default: false },
    'print-assertion': { type: 'boolean', default: false },
  },
});

for (const required of ['client', 'secret', 'aud']) {
  if (!o[required]) {
    console.error(`secret_jwt_loadgen: --${required} is required`);
    process.exit(2);
  }
}

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const header = b64({ alg: 'HS256', typ: 'JWT' });

function assertion() {
  const now = Math.floor(Date.now() / 1000);
  const claims = b64({ iss: o.client, sub: o.client, aud: o.aud, jti: randomUUID(), iat: now, exp: now + 60 });
  const input = `${header}.${claims}`;
  return `${input}.${createHmac('sha256', o.secret).update(input).digest('base64url')}`;
}

if (o['print-assertion']) {
  console.log(assertion());
  process.exit(0);
}

const { Pool } = await import('undici');

const url = new URL(o.url);
const conns = Number(o.conns);
const durationMs = Number(o.duration) * 1000;
const warmupMs = Number(o.warmup) * 1000;
const headers = { 'content-type': 'application/x-www-form-urlencoded' };
const prefix = `${o.body}&client_id=${encodeURIComponent(o.client)}`
  + '&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=';

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
    const body = `${prefix}${assertion()}`;
    const started = performance.now();
    try {
      const response = await pool.request({
        path: url.pathname, method: 'POST', headers, body, reset: o['new-conn'],
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
  tool: 'secret_jwt_loadgen.mjs',
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
}));
