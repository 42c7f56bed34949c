// A real OpenID Provider (panva/oidc-provider, a certified implementation) for accountmap's
// integration tests. Listens on 127.0.0.1 only. Usage:
//   node provider.mjs CONFIG.json      serve until killed; prints "listening ISSUER" when ready
//   node provider.mjs --genkey KTY     print a new private JWK (RSA 2048 or EC P-256) on stdout
// CONFIG.json: {
//   "port": 41234,
//   "issuer"?: "http://127.0.0.1:41235",  default http://127.0.0.1:PORT (a proxy in front: its URL)
//   "keys": [<private JWKs>],          the signing keys, the first one of a client's alg signs
//   "clients": [{"client_id", "client_secret", "id_token_signed_response_alg"?,
//                "redirect_uris"?: [...],            default ["http://127.0.0.1/callback"]
//                "token_endpoint_auth_method"?}],   default client_secret_basic
//   "accounts": {"<sub>": {"email": "...", "email_verified": true, "hd"?: "..."}},
//   "clock_offset": -7200              optional: the provider's clock runs this many seconds off
// }
//   node approve.mjs ISSUER USER_CODE ACCOUNT_ID   (see approve.mjs) approves a device code
// Nothing here mints tokens by hand: every token comes out of the provider's own authorization
// code flow (login.mjs drives it through the development login and consent pages), signed
// with the provider's keys and published in its JWKS.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

if (process.argv[2] === '--genkey') {
  const kty = process.argv[3] === 'EC' ? 'ec' : 'rsa';
  const { privateKey } = kty === 'ec'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  process.stdout.write(`${JSON.stringify(privateKey.export({ format: 'jwk' }))}\n`);
  process.exit(0);
}

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
if (cfg.clock_offset) {
  // An "expired token" test needs a token whose exp is already past: the provider's clock is
  // set back, which is how a provider with a wrong clock would issue one.
  const realNow = Date.now;
  Date.now = () => realNow() + cfg.clock_offset * 1000;
}
// `issuer`: set when a test proxy in front of the provider is what clients reach.
const issuer = cfg.issuer || `http://127.0.0.1:${cfg.port}`;

const provider = new Provider(issuer, {
  clients: cfg.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    // A web client (the default application_type) with the code flow may register http and
    // localhost redirect URIs (oidc-provider refuses them for the implicit flow only): the
    // browser tests' gate is reached at http://localhost:PORT/gate/callback through nginx.
    redirect_uris: c.redirect_uris || ['http://127.0.0.1/callback'],
    token_endpoint_auth_method: c.token_endpoint_auth_method || 'client_secret_basic',
    grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    id_token_signed_response_alg: c.id_token_signed_response_alg || 'RS256',
  })),
  jwks: { keys: cfg.keys },
  // Email claims in the ID token itself (as Google does), not only at the userinfo endpoint.
  conformIdTokenClaims: false,
  claims: { openid: ['sub'], email: ['email', 'email_verified', 'hd'] },
  scopes: ['openid', 'email'],
  async findAccount(ctx, id) {
    const account = cfg.accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
  // deviceFlow: RFC 8628 for verify=device, approved by approve.mjs through the provider's
  // own verification page (/device), login and consent.
  features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
  ttl: { IdToken: 600, AccessToken: 600, AuthorizationCode: 60, Interaction: 600, Session: 600, Grant: 600 },
});
provider.on('server_error', (ctx, err) => { console.error('server_error', err); });
// Why a token request was refused (the client only sees "invalid_grant"), for test logs.
provider.on('grant.error', (ctx, err) => { console.error('grant.error', err.error_detail || err.message); });

const server = provider.listen(cfg.port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
