// Signs a user in at the test provider the way a browser would, through the authorization
// code flow with PKCE: /auth → the development login page (any password) → the consent page →
// the redirect with the code → /token. Prints {"id_token", "access_token"} as one JSON line.
// Usage: node login.mjs ISSUER CLIENT_ID CLIENT_SECRET ACCOUNT_ID
import { createHash, randomBytes } from 'node:crypto';

const [issuer, clientId, clientSecret, accountId] = process.argv.slice(2);
const redirectUri = 'http://127.0.0.1/callback';
const jar = new Map();

async function go(url, init = {}) {
  const headers = { ...(init.headers || {}) };
  if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const res = await fetch(new URL(url, issuer), { ...init, headers, redirect: 'manual', signal: AbortSignal.timeout(10000) });
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    jar.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return res;
}

function fail(msg) { console.error(`login.mjs: ${msg}`); process.exit(1); }

const verifier = randomBytes(32).toString('base64url');
const challenge = createHash('sha256').update(verifier).digest('base64url');
const auth = new URL('/auth', issuer);
auth.search = new URLSearchParams({
  client_id: clientId, response_type: 'code', scope: 'openid email', redirect_uri: redirectUri,
  code_challenge: challenge, code_challenge_method: 'S256', nonce: randomBytes(8).toString('hex'),
  state: randomBytes(8).toString('hex'), prompt: 'consent',
}).toString();

let res = await go(auth);
let code;
for (let step = 0; step < 10 && !code; step += 1) {
  const location = res.headers.get('location');
  if (!location) fail(`no redirect at step ${step}: HTTP ${res.status} ${await res.text()}`);
  const next = new URL(location, issuer);
  if (next.href.startsWith(redirectUri)) {
    code = next.searchParams.get('code');
    if (!code) fail(`redirected without a code: ${next.search}`);
    break;
  }
  if (next.pathname.startsWith('/interaction/')) {
    const page = await (await go(next)).text();
    const prompt = page.includes('name="login"') ? 'login' : 'consent';
    const body = prompt === 'login'
      ? new URLSearchParams({ prompt, login: accountId, password: 'any' })
      : new URLSearchParams({ prompt });
    res = await go(next, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  } else {
    res = await go(next);
  }
}
if (!code) fail('the flow did not end at the redirect URI');

const tokenRes = await fetch(new URL('/token', issuer), {
  method: 'POST',
  headers: {
    'content-type': 'application/x-www-form-urlencoded',
    authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`,
  },
  body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }),
  signal: AbortSignal.timeout(10000),
});
const tokens = await tokenRes.json();
if (!tokens.id_token) fail(`token endpoint: HTTP ${tokenRes.status} ${JSON.stringify(tokens)}`);
console.log(JSON.stringify({ id_token: tokens.id_token, access_token: tokens.access_token }));
