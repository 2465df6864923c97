// Ironcrest dev environment: OIDC provider (panva oidc-provider) issuing client-credentials
// access tokens as RS256 JWTs that both Ironcrest and Slurm 22.05 (slurmrestd, auth/jwt jwks=) accept.
//
// Environment:
//   OIDC_HOST, OIDC_PORT         listen address (default 127.0.0.1:8091)
//   OIDC_ISSUER                  issuer URL (default http://OIDC_HOST:OIDC_PORT)
//   OIDC_PRIVATE_JWKS            path of the persisted private JWKS written by genkey.mjs (required)
//   OIDC_AUDIENCE                default resource indicator = token audience (default urn:ironcrest)
//
// Clients (client_secret_basic and client_secret_post both accepted):
//   ironcrest-dev       / ironcrest-dev-secret       -> user fireuser, token lifetime 3600 s
//   ironcrest-dev-short / ironcrest-dev-short-secret -> user fireuser, token lifetime 10 s
//   ironcrest-health    / ironcrest-health-secret    -> user firesrv (service account), 3600 s
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const host = process.env.OIDC_HOST || '127.0.0.1';
const port = Number(process.env.OIDC_PORT || 8091);
const issuer = process.env.OIDC_ISSUER || `http://${host}:${port}`;
const audience = process.env.OIDC_AUDIENCE || 'urn:ironcrest';
const jwks = JSON.parse(readFileSync(process.env.OIDC_PRIVATE_JWKS, 'utf8'));

const CLIENTS = {
  'ironcrest-dev': { secret: 'ironcrest-dev-secret', user: 'fireuser', ttl: 3600 },
  'ironcrest-dev-short': { secret: 'ironcrest-dev-short-secret', user: 'fireuser', ttl: 10 },
  'ironcrest-health': { secret: 'ironcrest-health-secret', user: 'firesrv', ttl: 3600 },
};

const provider = new Provider(issuer, {
  clients: Object.entries(CLIENTS).map(([id, c]) => ({
    client_id: id,
    client_secret: c.secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  jwks,
  scopes: ['openid', 'firecrest'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => ({
        scope: 'firecrest',
        audience: resource,
        accessTokenTTL: CLIENTS[client.clientId]?.ttl ?? 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  extraTokenClaims: (ctx, token) => {
    const user = CLIENTS[ctx.oidc.client?.clientId]?.user;
    return user ? { preferred_username: user, username: user, sun: user } : {};
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
