// A DPoP client that is not ours: panva's openid-client (npm, v6) gets a DPoP-bound token from
// certbound with the client_credentials grant (RFC 9449 §5, retrying with the server's nonce as
// the library does by itself) and calls a protected resource with it (RFC 9449 §7).
//
// Run from a directory where `npm install openid-client@6` was done (tests/e2e/test_dpop_interop.py
// copies this file there), with the server's CA trusted through NODE_EXTRA_CA_CERTS:
//
//   ISSUER=https://localhost:8443 CLIENT_ID=... CLIENT_SECRET=... RESOURCE=https://127.0.0.1:9443/resource \
//   NODE_EXTRA_CA_CERTS=server-ca.pem node dpop_interop.mjs
//
// Prints one JSON object: the token response's token_type, the access token, the public JWK of
// the DPoP key, and the resource's status and JSON body.
import * as client from 'openid-client';

const { ISSUER, CLIENT_ID, CLIENT_SECRET, RESOURCE } = process.env;

const config = await client.discovery(
  new URL(ISSUER),
  CLIENT_ID,
  undefined,
  client.ClientSecretBasic(CLIENT_SECRET),
);
const keyPair = await client.randomDPoPKeyPair('ES256');
const DPoP = client.getDPoPHandle(config, keyPair);

const tokens = await client.clientCredentialsGrant(config, { scope: 'read' }, { DPoP });
const answer = await client.fetchProtectedResource(
  config,
  tokens.access_token,
  new URL(RESOURCE),
  'GET',
  undefined,
  undefined,
  { DPoP },
);

console.log(JSON.stringify({
  token_type: tokens.token_type,
  access_token: tokens.access_token,
  jwk: await crypto.subtle.exportKey('jwk', keyPair.publicKey),
  resource_status: answer.status,
  resource_body: await answer.json(),
}));
