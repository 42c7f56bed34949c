// Approves a device authorization (RFC 8628) at the test provider the way a user would in a
// browser: the provider's verification page /device (with its xsrf token), the user code,
// the development login page (any password) and the consent page.
// Usage: node approve.mjs ISSUER USER_CODE ACCOUNT_ID
const [issuer, userCode, accountId] = process.argv.slice(2);
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
function fail(msg) { console.error(`approve.mjs: ${msg}`); process.exit(1); }
const form = { 'content-type': 'application/x-www-form-urlencoded' };

const page = await (await go('/device')).text();
const xsrf = /name="xsrf" value="([^"]+)"/.exec(page);
if (!xsrf) fail(`no xsrf field on /device: ${page.slice(0, 500)}`);
let res = await go('/device', { method: 'POST', headers: form, body: new URLSearchParams({ xsrf: xsrf[1], user_code: userCode }) });
for (let step = 0; step < 10; step += 1) {
  const location = res.headers.get('location');
  if (!location) {
    const text = await res.text();
    if (res.status === 200 && /success/i.test(text)) { console.log('approved'); process.exit(0); }
    const confirm = /name="xsrf" value="([^"]+)"/.exec(text);
    if (res.status === 200 && confirm && /Confirmation/.test(text)) {
      // "Device Login Confirmation": the user presses Continue.
      res = await go('/device', { method: 'POST', headers: form, body: new URLSearchParams({ xsrf: confirm[1], user_code: userCode, confirm: 'yes' }) });
      continue;
    }
    fail(`no redirect at step ${step}: HTTP ${res.status} ${text.slice(0, 500)}`);
  }
  const next = new URL(location, issuer);
  if (next.pathname.startsWith('/interaction/')) {
    const html = await (await go(next)).text();
    const prompt = html.includes('name="login"') ? 'login' : 'consent';
    const body = prompt === 'login'
      ? new URLSearchParams({ prompt, login: accountId, password: 'any' })
      : new URLSearchParams({ prompt });
    res = await go(next, { method: 'POST', body, headers: form });
  } else {
    res = await go(next);
  }
}
fail('the approval did not end on the success page');
