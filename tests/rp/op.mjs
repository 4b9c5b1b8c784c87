// An OpenID Connect provider built on the certified `oidc-provider` (v9),
// which tests/upstream.rs runs as the *upstream* forge signs in with
// (issue 13): forge is its relying party. Every protocol rule on this side
// (PKCE, code single use, client authentication, ID token contents and
// signature, userinfo) is the library's; this file only configures it and
// draws two plain HTML forms for the end-user's part.
//
// Configured by the environment:
//   OP_PORT            where it listens on 127.0.0.1; 0 or unset: a free port.
//                      The issuer is http://127.0.0.1:PORT (plain HTTP:
//                      loopback only).
//   OP_CLIENT_ID       the one static client (forge), required
//   OP_CLIENT_SECRET   its secret, required
//   OP_REDIRECT_URI    its redirect URI (forge's
//                      /v1/auth/providers/{id}/callback), required; several
//                      may be given separated by spaces
//   OP_CLIENT_AUTH     the client's token_endpoint_auth_method:
//                      client_secret_basic (default) or client_secret_post
//   OP_ID_TOKEN_ALG    the client's id_token_signed_response_alg: RS256
//                      (default), ES256 or EdDSA (keys for all three are in
//                      the JWKS, each with its own kid)
//   OP_CLAIMS_IN_ID_TOKEN  "1": scope claims in the ID token too
//                      (conformIdTokenClaims false). By default, as OpenID
//                      Connect Core 5.4 says for response_type=code, the
//                      email and profile claims come from userinfo only and
//                      the ID token carries sub (and the protocol claims).
//   OP_EMAIL, OP_EMAIL_VERIFIED ("true" by default), OP_NAME
//                      the person every account id resolves to
//   OP_PASSWORD        when set, the only password the login form accepts;
//                      unset: any password
//
// Scopes `openid email profile`; claims: email → email, email_verified;
// profile → name. PKCE is required, S256 only (the library supports no
// other method). Refresh tokens only with offline_access (not offered).
//
// The end-user's pages (no script, plain forms, stable selectors):
//   GET  /interaction/:uid          login: form#op-login (name=login,
//                                   name=password, button#op-sign-in);
//                                   consent: form#op-consent
//                                   (button#op-allow, button#op-deny)
//   POST /interaction/:uid/login    the login's subject is what was typed
//                                   in `login` (so a test chooses it)
//   POST /interaction/:uid/consent  allow: a grant of what was asked;
//                                   deny: access_denied back to the client
// Errors render as <pre id="op-error">JSON</pre>.
//
// On start it prints exactly one line to stdout:
//   op listening on http://127.0.0.1:PORT
// and logs each request (method and path, no query) and the library's
// error events to stderr.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const env = process.env;

// stdout carries the one ready line and nothing else (the test reads that
// line and may stop reading): the library's notices go to stderr.
console.log = console.error;
console.info = console.error;

function required(name) {
  const value = env[name];
  if (!value) {
    console.error(`op.mjs: ${name} is required`);
    process.exit(2);
  }
  return value;
}

const CLIENT_ID = required('OP_CLIENT_ID');
const CLIENT_SECRET = required('OP_CLIENT_SECRET');
const REDIRECT_URIS = required('OP_REDIRECT_URI').split(/\s+/).filter(Boolean);
const CLIENT_AUTH = env.OP_CLIENT_AUTH || 'client_secret_basic';
const ID_TOKEN_ALG = env.OP_ID_TOKEN_ALG || 'RS256';
const CLAIMS_IN_ID_TOKEN = env.OP_CLAIMS_IN_ID_TOKEN === '1';
const PERSON = {
  email: env.OP_EMAIL || 'ann@example.com',
  email_verified: (env.OP_EMAIL_VERIFIED || 'true') === 'true',
  name: env.OP_NAME || 'Ann Example',
};
const PASSWORD = env.OP_PASSWORD || undefined;
const PORT = Number(env.OP_PORT || 0);

if (!['client_secret_basic', 'client_secret_post'].includes(CLIENT_AUTH)) {
  console.error(`op.mjs: OP_CLIENT_AUTH must be client_secret_basic or client_secret_post, not ${CLIENT_AUTH}`);
  process.exit(2);
}
if (!['RS256', 'ES256', 'EdDSA'].includes(ID_TOKEN_ALG)) {
  console.error(`op.mjs: OP_ID_TOKEN_ALG must be RS256, ES256 or EdDSA, not ${ID_TOKEN_ALG}`);
  process.exit(2);
}

/** Fresh signing keys, one per algorithm, as private JWKs with a kid. */
function signingKeys() {
  const pairs = [
    ['RS256', crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['ES256', crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ['EdDSA', crypto.generateKeyPairSync('ed25519')],
  ];
  return pairs.map(([alg, { privateKey }]) => ({
    ...privateKey.export({ format: 'jwk' }),
    alg,
    use: 'sig',
    kid: `op-${alg.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}`,
  }));
}

function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body><h1>${esc(title)}</h1>
${body}
</body></html>`;
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

/** An application/x-www-form-urlencoded request body. */
async function formBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// Bind first: the issuer must carry the port before the Provider exists.
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
const ISSUER = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(ISSUER, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: REDIRECT_URIS,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: CLIENT_AUTH,
      id_token_signed_response_alg: ID_TOKEN_ALG,
    },
  ],
  jwks: { keys: signingKeys() },
  // Cookies are signed with a key of this run. On plain HTTP the library
  // sets them without `Secure` (it follows Koa's ctx.secure, false here, and
  // `provider.proxy` stays false: no TLS-offloading proxy is in front, so
  // no X-Forwarded-Proto is trusted); SameSite=Lax lets the cookies ride the
  // top-level redirects between forge and this provider.
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  conformIdTokenClaims: !CLAIMS_IN_ID_TOKEN,
  // Lifetimes in seconds, stated so that the library has no defaults to
  // warn about.
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
  },
  features: {
    devInteractions: { enabled: false },
  },
  interactions: {
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...PERSON };
      },
    };
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('OP error', `<pre id="op-error">${esc(JSON.stringify(out))}</pre>`);
  },
});

for (const event of [
  'server_error',
  'authorization.error',
  'grant.error',
  'userinfo.error',
  'jwks.error',
  'discovery.error',
  'interaction.error',
]) {
  provider.on(event, (_ctx, error) => {
    console.error(`op event ${event}: ${error?.name}: ${error?.message} ${error?.error_description ?? ''}`);
  });
}
provider.on('grant.success', () => console.error('op event grant.success'));

/** The login or consent page of interaction `uid`. */
async function showInteraction(req, res, uid) {
  const { prompt, params } = await provider.interactionDetails(req, res);
  const client = await provider.Client.find(params.client_id);
  const action = (step) => `/interaction/${esc(uid)}/${step}`;
  if (prompt.name === 'login') {
    send(
      res,
      200,
      page(
        'Sign in to the OP',
        `<p id="op-client">for ${esc(client?.clientId ?? params.client_id)}</p>
<form id="op-login" method="post" action="${action('login')}">
<label>Login <input type="text" name="login" required value="${esc(params.login_hint ?? '')}"></label>
<label>Password <input type="password" name="password" required></label>
<button id="op-sign-in" type="submit">Sign in</button>
</form>`,
      ),
    );
    return;
  }
  if (prompt.name === 'consent') {
    const scopes = (prompt.details.missingOIDCScope ?? []).map((s) => `<li>${esc(s)}</li>`).join('');
    send(
      res,
      200,
      page(
        'Allow access',
        `<p id="op-client">${esc(client?.clientId ?? params.client_id)} asks for:</p>
<ul id="op-scopes">${scopes}</ul>
<form id="op-consent" method="post" action="${action('consent')}">
<button id="op-allow" type="submit" name="decision" value="allow">Allow</button>
<button id="op-deny" type="submit" name="decision" value="deny">Deny</button>
</form>`,
      ),
    );
    return;
  }
  send(res, 501, page('OP error', `<pre id="op-error">${esc(JSON.stringify({ prompt: prompt.name }))}</pre>`));
}

async function submitLogin(req, res) {
  const details = await provider.interactionDetails(req, res);
  const body = await formBody(req);
  const login = (body.get('login') ?? '').trim();
  if (details.prompt.name !== 'login' || !login || (PASSWORD && body.get('password') !== PASSWORD)) {
    send(res, 400, page('Sign in to the OP', '<p id="op-login-error">Wrong login or password.</p>'));
    return;
  }
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: login, amr: ['pwd'] } },
    { mergeWithLastSubmission: false },
  );
}

async function submitConsent(req, res) {
  const { prompt, grantId, session, params } = await provider.interactionDetails(req, res);
  const body = await formBody(req);
  if (body.get('decision') !== 'allow') {
    await provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'the end-user denied the request' },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  if (prompt.name !== 'consent') throw new Error(`not a consent prompt: ${prompt.name}`);
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const { details } = prompt;
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  if (details.missingResourceScopes) {
    for (const [indicator, scope] of Object.entries(details.missingResourceScopes)) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
  }
  const saved = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId: saved } }, { mergeWithLastSubmission: true });
}

const callback = provider.callback();

server.on('request', async (req, res) => {
  const path = new URL(req.url, ISSUER).pathname;
  console.error(`op ${req.method} ${path}`);
  const m = path.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|consent))?$/);
  if (!m) {
    callback(req, res);
    return;
  }
  try {
    const [, uid, step] = m;
    if (req.method === 'GET' && !step) await showInteraction(req, res, uid);
    else if (req.method === 'POST' && step === 'login') await submitLogin(req, res);
    else if (req.method === 'POST' && step === 'consent') await submitConsent(req, res);
    else send(res, 405, page('OP error', '<pre id="op-error">{"error":"method not allowed"}</pre>'));
  } catch (error) {
    // An unknown or expired interaction (no cookie) lands here.
    console.error(`op interaction error: ${error?.name}: ${error?.message}`);
    if (!res.headersSent) {
      send(
        res,
        400,
        page('OP error', `<pre id="op-error">${esc(JSON.stringify({ error: error?.name, message: error?.message }))}</pre>`),
      );
    }
  }
});

process.stdout.write(`op listening on ${ISSUER}\n`);
