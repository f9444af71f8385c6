// Drives MagAuth (and MagGate under the signed-in user's identity) with the real
// @supabase/supabase-js client, as an application would. Usage: node auth.mjs <base url>
// <anon api key>; tests/magauth.rs runs it. Exits non-zero on the first failed check and
// prints "N passed, 0 failed" at the end.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createClient } from '@supabase/supabase-js';

const [url, key] = process.argv.slice(2);
// Node 20 has no global WebSocket, which supabase-js's realtime client asks for at
// construction; these checks use no realtime, so a placeholder transport suffices there.
const realtime = globalThis.WebSocket ? {} : { realtime: { transport: class NoWebSocket {} } };
const options = {
  auth: { autoRefreshToken: false, persistSession: false, detectSessionInUrl: false },
  ...realtime,
};
const supabase = createClient(url, key, options);

let passed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (error) {
    console.error(`FAIL ${name}: ${error.stack ?? error}`);
    console.log(`${passed} passed, 1 failed`);
    process.exit(1);
  }
}

const email = `js-${Date.now()}@example.com`;
const password = 'js-secret-123';
let userId;
let firstRefresh;

await check('signUp returns a session and the user', async () => {
  const { data, error } = await supabase.auth.signUp({ email, password, options: { data: { plan: 'free' } } });
  assert.equal(error, null);
  assert.ok(data.session?.access_token);
  assert.equal(data.user.email, email);
  assert.equal(data.user.user_metadata.plan, 'free');
  userId = data.user.id;
});

await check('signUp again is user_already_exists', async () => {
  const other = createClient(url, key, options);
  const { error } = await other.auth.signUp({ email, password });
  assert.equal(error?.code, 'user_already_exists');
  assert.equal(error?.status, 422);
});

await check('weak password is AuthWeakPasswordError', async () => {
  const other = createClient(url, key, options);
  const { error } = await other.auth.signUp({ email: `weak-${email}`, password: '1' });
  assert.equal(error?.code, 'weak_password');
  assert.deepEqual(error?.reasons, ['length']);
});

await check('wrong password is invalid_credentials', async () => {
  const { error } = await supabase.auth.signInWithPassword({ email, password: 'nope-nope' });
  assert.equal(error?.code, 'invalid_credentials');
  assert.equal(error?.message, 'Invalid login credentials');
  assert.equal(error?.status, 400);
});

await check('signInWithPassword', async () => {
  const { data, error } = await supabase.auth.signInWithPassword({ email, password });
  assert.equal(error, null);
  assert.equal(data.user.id, userId);
  assert.equal(data.session.token_type, 'bearer');
  firstRefresh = data.session.refresh_token;
});

await check('getUser asks the server', async () => {
  const { data, error } = await supabase.auth.getUser();
  assert.equal(error, null);
  assert.equal(data.user.email, email);
});

await check('refreshSession rotates the refresh token', async () => {
  const { data, error } = await supabase.auth.refreshSession();
  assert.equal(error, null);
  assert.notEqual(data.session.refresh_token, firstRefresh);
  assert.equal(data.user.id, userId);
});

await check('insert under the user identity', async () => {
  const { error, status } = await supabase.from('todos').insert({ id: 7, title: 'from js', owner_id: userId });
  assert.equal(error, null);
  assert.equal(status, 201);
});

await check('select returns only the user rows', async () => {
  const { data, error } = await supabase.from('todos').select('id,title,owner_id');
  assert.equal(error, null);
  assert.deepEqual(data, [{ id: 7, title: 'from js', owner_id: userId }]);
});

await check('updateUser changes the password', async () => {
  const { data, error } = await supabase.auth.updateUser({ password: 'js-secret-456' });
  assert.equal(error, null);
  assert.equal(data.user.id, userId);
});

// RFC 6238 TOTP (SHA-1, 30 s, 6 digits), as an authenticator app computes it.
function totp(base32) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const hash = createHmac('sha1', key).update(counter).digest();
  const offset = hash[19] & 0xf;
  return String((hash.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

await check('mfa enroll, challengeAndVerify raise the session to aal2', async () => {
  const { data: factor, error } = await supabase.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'js' });
  assert.equal(error, null);
  assert.equal(factor.type, 'totp');
  const { error: verifyError } = await supabase.auth.mfa.challengeAndVerify({
    factorId: factor.id,
    code: totp(factor.totp.secret),
  });
  assert.equal(verifyError, null);
  const { data: level } = await supabase.auth.mfa.getAuthenticatorAssuranceLevel();
  assert.equal(level.currentLevel, 'aal2');
  const { data: factors } = await supabase.auth.mfa.listFactors();
  assert.equal(factors.totp.length, 1);
  assert.equal(factors.totp[0].status, 'verified');
});

await check('signOut ends the session', async () => {
  const { data: before } = await supabase.auth.getSession();
  const token = before.session.access_token;
  const { error } = await supabase.auth.signOut();
  assert.equal(error, null);
  const { data } = await supabase.auth.getSession();
  assert.equal(data.session, null);
  // The server answers 403 session_not_found, which supabase-js reports as a missing session.
  const { error: gone } = await supabase.auth.getUser(token);
  assert.ok(gone, 'the signed-out access token must no longer work');
  assert.ok(gone.status === 403 || gone.name === 'AuthSessionMissingError', `${gone.name} ${gone.status}`);
});

await check('the old refresh token is rejected after reuse', async () => {
  const other = createClient(url, key, options);
  const { error } = await other.auth.refreshSession({ refresh_token: firstRefresh });
  assert.ok(error, 'reusing a rotated token must fail');
  assert.match(error.code ?? '', /refresh_token_(already_used|not_found)/);
});

console.log(`${passed} passed, 0 failed`);
process.exit(0);
