// Ironcrest dev environment: OIDC provider (panva oidc-provider) issuing client-credentials
// access tokens as RS256 JWTs that both Ironcrest and Slurm 22.05 (slurmrestd, auth/jwt jwks=) accept.
//
// Environment:
//   OIDC_HOST, OIDC_PORT         listen address (default 127.0.0.1:8091)
//   OIDC_ISSUER                  issuer URL (default http://OIDC_HOST:OIDC_PORT)
//   OIDC_PRIVATE_JWKS            path of the persisted private JWKS written by genkey.mjs (required)
//   OIDC_AUDIENCE                default resource indicator = token audience (default urn:ironcrest)
//
// Clients (client_secret_basic and client_secret_post both accepted); a token carries the
// scopes its request asks for (`scope=…`), among those its client may have:
//   ironcrest-dev          / ironcrest-dev-secret          -> user fireuser, 3600 s;
//                            scopes firecrest, firecrest:read, firecrest:write
//   ironcrest-dev-short    / ironcrest-dev-short-secret    -> user fireuser, 10 s
//   ironcrest-dev-readonly / ironcrest-dev-readonly-secret -> user fireuser, 3600 s;
//                            scopes firecrest, firecrest:read (a read-only client)
//   ironcrest-dev-admin    / ironcrest-dev-admin-secret    -> user fireuser, 3600 s;
//                            scopes firecrest, firecrest:admin (the gateway's admin routes)
//   ironcrest-health       / ironcrest-health-secret       -> user firesrv (service account), 3600 s
// Every fireuser token has the claim groups: ["hpc", "cluster-slurm-ssh-users"].
//
// And one client of the authorization-code flow, Ironcrest's web UI (docs/ui.md):
//   ironcrest-ui           / ironcrest-ui-secret           -> the user who logs in on this
//                            provider's own login page (fireuser / fireuser-password), with
//                            PKCE and refresh tokens. A native-type client, so its loopback
//                            redirect URI http://127.0.0.1/ui/callback matches on any port
//                            (RFC 8252): tests run their own Ironcrest on a free port.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const host = process.env.OIDC_HOST || '127.0.0.1';
const port = Number(process.env.OIDC_PORT || 8091);
const issuer = process.env.OIDC_ISSUER || `http://${host}:${port}`;
const audience = process.env.OIDC_AUDIENCE || 'urn:ironcrest';
const jwks = JSON.parse(readFileSync(process.env.OIDC_PRIVATE_JWKS, 'utf8'));

const FIREUSER_GROUPS = ['hpc', 'cluster-slurm-ssh-users'];
const CLIENTS = {
  'ironcrest-dev': {
    secret: 'ironcrest-dev-secret', user: 'fireuser', ttl: 3600,
    scope: 'firecrest firecrest:read firecrest:write', groups: FIREUSER_GROUPS,
  },
  'ironcrest-dev-short': { secret: 'ironcrest-dev-short-secret', user: 'fireuser', ttl: 10, groups: FIREUSER_GROUPS },
  'ironcrest-dev-readonly': {
    secret: 'ironcrest-dev-readonly-secret', user: 'fireuser', ttl: 3600,
    scope: 'firecrest firecrest:read', groups: FIREUSER_GROUPS,
  },
  'ironcrest-dev-admin': {
    secret: 'ironcrest-dev-admin-secret', user: 'fireuser', ttl: 3600,
    scope: 'firecrest firecrest:admin', groups: FIREUSER_GROUPS,
  },
  'ironcrest-health': { secret: 'ironcrest-health-secret', user: 'firesrv', ttl: 3600 },
};
const ALL_SCOPES = 'openid offline_access firecrest firecrest:read firecrest:write firecrest:admin';

// Users of the interactive login page: their password and the token claims they get.
const USERS = {
  fireuser: { password: 'fireuser-password', groups: FIREUSER_GROUPS },
};
const UI_CLIENT = {
  client_id: 'ironcrest-ui',
  client_secret: 'ironcrest-ui-secret',
  application_type: 'native',
  scope: 'openid offline_access firecrest firecrest:read firecrest:write',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/ui/callback'],
  post_logout_redirect_uris: ['http://127.0.0.1/ui/'],
  token_endpoint_auth_method: 'client_secret_basic',
};

const provider = new Provider(issuer, {
  clients: Object.entries(CLIENTS).map(([id, c]) => ({
    client_id: id,
    client_secret: c.secret,
    scope: c.scope ?? 'firecrest',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })).concat([UI_CLIENT]),
  findAccount: (ctx, id) => (USERS[id] ? { accountId: id, claims: () => ({ sub: id, preferred_username: id }) } : undefined),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // The UI asks for offline_access without prompt=consent; its grant decides.
  issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  jwks,
  scopes: ALL_SCOPES.split(' '),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => ({
        scope: ALL_SCOPES,
        audience: resource,
        accessTokenTTL: CLIENTS[client.clientId]?.ttl ?? 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  extraTokenClaims: (ctx, token) => {
    const account = token.accountId && USERS[token.accountId];
    if (account) {
      const user = token.accountId;
      return { preferred_username: user, username: user, sun: user, groups: account.groups };
    }
    const client = CLIENTS[ctx.oidc.client?.clientId];
    if (!client) return {};
    const { user, groups } = client;
    return { preferred_username: user, username: user, sun: user, ...(groups ? { groups } : {}) };
  },
  formats: {
    customizers: {
      // Slurm 22.05 (libjwt 1.10) rejects RFC 9068 "typ: at+jwt"; kid and alg are added when signing.
      jwt: (ctx, token, jwt) => { jwt.header = { typ: 'JWT' }; },
    },
  },
  cookies: { keys: ['ironcrest-dev-cookie-key'] },
});
provider.proxy = false;

// The login page: a password form for the login prompt; consent is given at once (the
// UI is Ironcrest's own client).
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const loginPage = (uid, error) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign in - Ironcrest dev IdP</title></head>
<body><main><h1>Sign in to the Ironcrest dev IdP</h1>
${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<p><label for="username">User name</label> <input id="username" name="username" autocomplete="username" required autofocus></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit" id="sign-in">Sign in</button></p>
</form></main></body></html>`;

const readForm = (req) => new Promise((resolve, reject) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => { body += chunk; if (body.length > 10000) req.destroy(); });
  req.on('end', () => resolve(new URLSearchParams(body)));
  req.on('error', reject);
});

async function consent(req, res, details) {
  const { prompt, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'POST' && req.url.endsWith('/login')) {
    const form = await readForm(req);
    const user = USERS[form.get('username')];
    if (!user || form.get('password') !== user.password) {
      res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' });
      res.end(loginPage(details.uid, 'Unknown user name or wrong password.'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: form.get('username') } }, { mergeWithLastSubmission: false });
  } else if (details.prompt.name === 'consent') {
    await consent(req, res, details);
  } else {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(loginPage(details.uid));
  }
}

const providerCallback = provider.callback();
const server = createServer((req, res) => {
  if (!req.url.startsWith('/interaction/')) return providerCallback(req, res);
  interaction(req, res).catch((err) => {
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`Login failed: ${err.message}`);
  });
});
server.listen(port, host);
server.on('listening', () => console.log(`oidc-provider listening on ${issuer}`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
