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
// --new-conn: a full handshake per request (scripts/bench_methods.py uses it). The loop and the
// JSON it prints are closed_loop.mjs's.
//
// --host sets the Host header (default: the htu's host), so a server that derives the expected htu
// from the request (oidc-provider) and one that derives it from its issuer (certbound) both see the
// same URL. Prints one JSON object like loadgen.mjs: {requests, ok, rps, ok_rps, p50_ms, ...,
// errors, non2xx, status}.
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { parseArgs } from 'node:util';

import { runClosedLoop } from './closed_loop.mjs';

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

const headers = {
  'content-type': 'application/x-www-form-urlencoded',
  host: o.host ?? new URL(o.htu).host,
};
if (o.basic) headers.authorization = `Basic ${Buffer.from(o.basic).toString('base64')}`;

await runClosedLoop({
  url: o.url,
  conns: Number(o.conns),
  durationMs: Number(o.duration) * 1000,
  warmupMs: Number(o.warmup) * 1000,
  servername: o.servername,
  newConn: o['new-conn'],
  request: () => ({ headers: { ...headers, dpop: proof() }, body: o.body }),
  tool: 'dpop_loadgen.mjs',
  extra: { jkt },
});
