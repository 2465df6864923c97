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
const ALL_SCOPES = 'openid firecrest firecrest:read firecrest:write firecrest:admin';

const provider = new Provider(issuer, {
  clients: Object.entries(CLIENTS).map(([id, c]) => ({
    client_id: id,
    client_secret: c.secret,
    scope: c.scope ?? 'firecrest',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  jwks,
  scopes: ALL_SCOPES.split(' '),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
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

const server = provider.listen(port, host);
server.on('listening', () => console.log(`oidc-provider listening on ${issuer}`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
