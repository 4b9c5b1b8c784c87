// A small relying party built on the certified `openid-client` (v6), which
// tests/rp.rs runs against the real forge binary: every protocol check
// (discovery, PKCE, state, the ID token's signature, iss, aud, nonce,
// iat/exp, the RFC 9207 `iss` response parameter, refresh, userinfo's sub,
// RP-initiated logout) is the library's, none is ours.
//
// Configured by the environment:
//   ISSUER         forge's issuer, e.g. http://127.0.0.1:8080 (plain HTTP is
//                  allowed: the tests run on loopback)
//   CLIENT_ID      the registered client
//   CLIENT_SECRET  its secret; unset for a public client (PKCE only)
//   CLIENT_AUTH    client_secret_basic (default) or client_secret_post
//   SCOPE          default "openid profile email offline_access"
//   ID_TOKEN_ALG   the client's registered id_token_signed_response_alg
//                  (EdDSA or RS256); the library refuses any other
//   RP_PORT        where this app listens, on 127.0.0.1
//
// Web app (node:http), every answer a page with <pre id="result">JSON</pre>:
//   GET /start     discovery, PKCE S256 + state + nonce kept in memory, 302 to
//                  the authorization endpoint (query `prompt`, `max_age`,
//                  `login_hint` are passed on)
//   GET /callback  authorization code grant, refresh (rotation checked),
//                  userinfo (expected sub): {ok, sub, claims, userinfo, ...};
//                  then the refresh token is revoked (RFC 7009) and must be
//                  refused: `revocation: {ok, ...}`
//   GET /logout    302 to the end-session endpoint with id_token_hint,
//                  post_logout_redirect_uri = /bye and a state
//   GET /bye       {ok, state} once forge sends the browser back
// Errors: {ok: false, error, ...} in the same <pre>.
//
// Command line:
//   node rp.mjs discover            the discovery metadata as openid-client parsed it
//   node rp.mjs client-credentials  a client_credentials grant: {ok, token_type, scope, expires_in, claims}

import * as http from 'node:http';
import * as client from 'openid-client';

const env = process.env;
const ISSUER = env.ISSUER;
const CLIENT_ID = env.CLIENT_ID || '';
const CLIENT_SECRET = env.CLIENT_SECRET || undefined;
const CLIENT_AUTH = env.CLIENT_AUTH || 'client_secret_basic';
const SCOPE = env.SCOPE || 'openid profile email offline_access';
const ID_TOKEN_ALG = env.ID_TOKEN_ALG || undefined;
const RP_PORT = Number(env.RP_PORT || 0);

if (!ISSUER) {
  console.error('rp.mjs: ISSUER is required');
  process.exit(2);
}
if (!['client_secret_basic', 'client_secret_post'].includes(CLIENT_AUTH)) {
  console.error(`rp.mjs: CLIENT_AUTH must be client_secret_basic or client_secret_post, not ${CLIENT_AUTH}`);
  process.exit(2);
}

/** A fresh openid-client Configuration from forge's discovery document. */
async function discover() {
  const metadata = {};
  if (CLIENT_SECRET) metadata.client_secret = CLIENT_SECRET;
  if (ID_TOKEN_ALG) metadata.id_token_signed_response_alg = ID_TOKEN_ALG;
  const auth = !CLIENT_SECRET
    ? client.None()
    : CLIENT_AUTH === 'client_secret_post'
      ? client.ClientSecretPost(CLIENT_SECRET)
      : client.ClientSecretBasic(CLIENT_SECRET);
  return client.discovery(new URL(ISSUER), CLIENT_ID || 'discovery-only', metadata, auth, {
    execute: [client.allowInsecureRequests],
  });
}

/** The claims of a JWT's header and payload, unverified (for the report only). */
function decodeJwt(jwt) {
  const part = (i) => JSON.parse(Buffer.from(jwt.split('.')[i], 'base64url').toString('utf8'));
  try {
    return { header: part(0), payload: part(1) };
  } catch {
    return null;
  }
}

/** What went wrong, as JSON: openid-client's errors carry the OAuth error and the response. */
function describe(e) {
  const out = { ok: false, error: String(e?.message ?? e), message: String(e?.message ?? e) };
  // An OAuth error (`error` of a response) replaces the message as `error`.
  for (const key of ['name', 'code', 'error', 'error_description', 'status']) {
    if (e?.[key] !== undefined && typeof e[key] !== 'function') out[key] = e[key];
  }
  if (e?.cause !== undefined) {
    try {
      out.cause = JSON.parse(JSON.stringify(e.cause));
    } catch {
      out.cause = String(e.cause);
    }
  }
  return out;
}

if (process.argv[2] === 'discover') {
  try {
    const config = await discover();
    console.log(JSON.stringify(config.serverMetadata(), null, 2));
  } catch (e) {
    console.log(JSON.stringify(describe(e), null, 2));
    process.exit(1);
  }
  process.exit(0);
}

if (process.argv[2] === 'client-credentials') {
  try {
    const config = await discover();
    const params = env.SCOPE ? { scope: env.SCOPE } : {};
    const tokens = await client.clientCredentialsGrant(config, params);
    const jwt = decodeJwt(tokens.access_token);
    console.log(
      JSON.stringify({
        ok: true,
        token_type: tokens.token_type,
        scope: tokens.scope,
        expires_in: tokens.expiresIn(),
        refresh_token: tokens.refresh_token !== undefined,
        id_token: tokens.id_token !== undefined,
        claims: jwt?.payload ?? null,
      }),
    );
  } catch (e) {
    console.log(JSON.stringify(describe(e)));
    process.exit(1);
  }
  process.exit(0);
}

const base = () => `http://127.0.0.1:${server.address().port}`;

/** Sign-ins under way, by state. */
const pending = new Map();
/** Logouts under way, by state. */
const logouts = new Map();
/** The last completed sign-in: its ID token is the logout's id_token_hint. */
let last = null;

function escapeHtml(text) {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function page(res, status, title, result) {
  const json = JSON.stringify(result, null, 2);
  if (!result.ok) console.error(`rp.mjs ${title}: ${json}`);
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>RP ${escapeHtml(title)}</title></head>` +
      `<body><h1>RP ${escapeHtml(title)}</h1><pre id="result">${escapeHtml(json)}</pre></body></html>`,
  );
}

function redirect(res, location) {
  res.writeHead(302, { location: location.href, 'cache-control': 'no-store' });
  res.end();
}

async function start(req, res, url) {
  const config = await discover();
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params = {
    redirect_uri: `${base()}/callback`,
    scope: SCOPE,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  for (const passed of ['prompt', 'max_age', 'login_hint']) {
    const value = url.searchParams.get(passed);
    if (value !== null) params[passed] = value;
  }
  const maxAge = params.max_age === undefined ? undefined : Number(params.max_age);
  pending.set(state, { config, codeVerifier, nonce, maxAge });
  redirect(res, client.buildAuthorizationUrl(config, params));
}

async function callback(req, res, url) {
  const state = url.searchParams.get('state');
  const flow = state === null ? undefined : pending.get(state);
  if (!flow) {
    return page(res, 400, 'callback', {
      ok: false,
      error: 'no sign-in under way with this state',
      query: Object.fromEntries(url.searchParams),
    });
  }
  pending.delete(state);
  const { config, codeVerifier, nonce, maxAge } = flow;
  const currentUrl = new URL(req.url, base());
  const issParam = currentUrl.searchParams.get('iss');
  const tokens = await client.authorizationCodeGrant(config, currentUrl, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
    ...(maxAge === undefined ? {} : { maxAge }),
  });
  const claims = tokens.claims();
  const idToken = decodeJwt(tokens.id_token);
  const result = {
    ok: true,
    sub: claims.sub,
    claims,
    id_token_header: idToken?.header ?? null,
    iss_param: issParam,
    token_type: tokens.token_type,
    scope: tokens.scope ?? null,
    expires_in: tokens.expiresIn() ?? null,
    refreshed: false,
  };
  let accessToken = tokens.access_token;
  let refreshToken = tokens.refresh_token;
  if (tokens.refresh_token) {
    const again = await client.refreshTokenGrant(config, tokens.refresh_token);
    result.refreshed = true;
    result.rotated = typeof again.refresh_token === 'string' && again.refresh_token !== tokens.refresh_token;
    // An ID token in a refresh response is validated by the library
    // against the first one (OpenID Connect Core 12.2).
    result.refresh_id_token = again.id_token !== undefined;
    if (again.id_token !== undefined) result.refreshed_claims = again.claims();
    accessToken = again.access_token;
    refreshToken = again.refresh_token ?? refreshToken;
  }
  result.userinfo = await client.fetchUserInfo(config, accessToken, claims.sub);
  if (refreshToken) {
    // RFC 7009 at the revocation endpoint; the revoked refresh token must
    // then be refused. Reported apart: the sign-in itself succeeded.
    try {
      await client.tokenRevocation(config, refreshToken, { token_type_hint: 'refresh_token' });
      try {
        await client.refreshTokenGrant(config, refreshToken);
        result.revocation = { ok: false, error: 'the revoked refresh token still works' };
      } catch (e) {
        result.revocation = { ok: e?.error === 'invalid_grant', refused_with: e?.error ?? String(e) };
      }
    } catch (e) {
      result.revocation = describe(e);
    }
  }
  last = { config, idToken: tokens.id_token, sub: claims.sub };
  page(res, 200, 'callback', result);
}

async function logout(req, res) {
  if (!last) return page(res, 400, 'logout', { ok: false, error: 'nobody signed in here' });
  const state = client.randomState();
  logouts.set(state, true);
  redirect(
    res,
    client.buildEndSessionUrl(last.config, {
      id_token_hint: last.idToken,
      post_logout_redirect_uri: `${base()}/bye`,
      state,
    }),
  );
}

async function bye(req, res, url) {
  const state = url.searchParams.get('state');
  const known = state !== null && logouts.delete(state);
  if (known) last = null;
  page(res, known ? 200 : 400, 'bye', {
    ok: known,
    state,
    ...(known ? {} : { error: 'not the state of a logout this app started' }),
    query: Object.fromEntries(url.searchParams),
  });
}

const routes = { '/start': start, '/callback': callback, '/logout': logout, '/bye': bye };

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, base());
  const route = req.method === 'GET' ? routes[url.pathname] : undefined;
  if (!route) return page(res, 404, 'not found', { ok: false, error: `no route ${req.method} ${url.pathname}` });
  try {
    await route(req, res, url);
  } catch (e) {
    page(res, 500, url.pathname.slice(1), describe(e));
  }
});

server.listen(RP_PORT, '127.0.0.1', () => {
  console.log(`rp listening on ${base()}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
