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
// --new-conn: a full handshake per request. The loop and the JSON it prints (like loadgen.mjs's) are
// closed_loop.mjs's.
import { createHmac, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

import { runClosedLoop } from './closed_loop.mjs';

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

const headers = { 'content-type': 'application/x-www-form-urlencoded' };
const prefix = `${o.body}&client_id=${encodeURIComponent(o.client)}`
  + '&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=';

await runClosedLoop({
  url: o.url,
  conns: Number(o.conns),
  durationMs: Number(o.duration) * 1000,
  warmupMs: Number(o.warmup) * 1000,
  servername: o.servername,
  newConn: o['new-conn'],
  request: () => ({ headers, body: `${prefix}${assertion()}` }),
  tool: 'secret_jwt_loadgen.mjs',
});
