// A throw-away OpenID provider (npm `oidc-provider`, a certified implementation) for meho's MCP
// tests. It issues JWT access tokens for meho's `/mcp` resource, signed by keys made at startup.
//
//   node idp.mjs [PORT]        # PORT from argv[2], else $IDP_PORT, else 0 (a free port)
//   MEHO_RESOURCE=http://127.0.0.1:8080/mcp   # the default resource (token audience)
//   MEHO_CONSOLE_REDIRECT=http://127.0.0.1:8080/console/   # the console's redirect URI(s),
//                              # comma-separated; default: the origin of MEHO_RESOURCE + /console/
//
// It listens on 127.0.0.1 only, with issuer `http://127.0.0.1:<port>`, prints exactly one line
// `IDP READY <issuer>` on stdout once it accepts connections (everything else goes to stderr), and
// exits on SIGTERM or SIGINT. Nothing is persisted: keys, tokens and grants live in memory.
//
// A token for meho (client_credentials, RFC 8707 resource indicator, client_secret_post):
//
//   curl -s -X POST "$ISSUER/token" \
//     -d grant_type=client_credentials \
//     -d client_id=tenant-a-admin -d client_secret=tenant-a-admin-secret \
//     -d resource=http://127.0.0.1:8080/mcp \
//     -d scope=mcp:tools
//
//   => {"access_token":"<JWT>","expires_in":600,"token_type":"Bearer","scope":"mcp:tools"}
//
// The JWT header is {"alg":"RS256","typ":"at+jwt","kid":"…"}; its payload has `iss` (the issuer),
// `aud` (the requested resource; any absolute URI is accepted so tests can mint wrong-audience
// tokens), `sub` and `client_id` (the client id), `iat`, `exp` (iat + 600), `jti`, `scope` (the
// requested scopes that the resource offers: `mcp:tools mcp:feed`) and the client's claims below
// (`tenant_id`, `tenant_role`, `groups`). Omitting `resource` uses $MEHO_RESOURCE. Omitting `scope`
// gives a token without a `scope` claim.
//
// Clients (all confidential, `client_secret_post`, secret `<client_id>-secret`, client_credentials):
//   tenant-a-admin   tenant_id "a", tenant_role "tenant_admin", groups ["ops"]       RS256
//   tenant-a-reader  tenant_id "a", tenant_role "read_only",    groups ["ops"]       RS256
//   tenant-a-agent   tenant_id "a", tenant_role "operator",     groups ["ops"]       RS256
//                    (an agent that may ask for approvals but is not an approver)
//   tenant-b-admin   tenant_id "b", tenant_role "tenant_admin", groups ["ops"]       RS256
//   no-tenant        groups ["ops"] only                                              RS256
//   tenant-a-es256   like tenant-a-admin                                              ES256 (P-256)
//   tenant-a-eddsa   like tenant-a-admin                                              EdDSA (Ed25519)
//   no-scope         like tenant-a-admin, but the resource grants it only `openid`:  RS256
//                    asking for `mcp:tools` yields a token without a `scope` claim,
//                    asking for `openid mcp:tools` yields `scope: "openid"`.
//
// Device flow (RFC 8628) for the public client `meho-cli` is on too, with the provider's
// development login forms: any login name is accepted, and a login name equal to one of the client
// ids above gets that profile's claims (so log in as `tenant-a-admin` to act as tenant a's admin).
// Its tokens have `sub` = the login name. Headless approval (checked with a cookie-keeping HTTP
// client): POST /device/auth client_id=meho-cli&scope=openid mcp:tools; GET verification_uri_complete
// and POST its form (hidden xsrf + user_code) to /device with confirm=yes; POST the login form
// at /interaction/<uid> with prompt=login&login=tenant-a-admin&password=x, then the consent form
// with prompt=consent; then POST /token grant_type=urn:ietf:params:oauth:grant-type:device_code
// &device_code=…&client_id=meho-cli gives a JWT for $MEHO_RESOURCE (scope mcp:tools) and an ID token.
//
// The web console logs in as the public client `meho-console` (no secret): authorization code
// with PKCE (S256, required), redirect URIs from $MEHO_CONSOLE_REDIRECT, and CORS on the token
// endpoint for exactly the origins of those redirect URIs (discovery and JWKS answer any origin).
// The browser goes to GET /auth?client_id=meho-console&response_type=code&redirect_uri=…
// &scope=openid mcp:tools&state=…&code_challenge=…&code_challenge_method=S256&resource=<meho /mcp>,
// signs in through the same development forms (login name `tenant-a-admin` gets tenant a's admin
// claims; the password is ignored), consents, and comes back to the redirect URI with ?code=…;
// POST /token grant_type=authorization_code&code=…&redirect_uri=…&client_id=meho-console
// &code_verifier=…&resource=<meho /mcp> gives a JWT access token for meho (sub = the login name,
// scope mcp:tools, the profile's claims) and an ID token.

import * as crypto from 'node:crypto';

// oidc-provider prints its notices with console.info, i.e. on stdout. Keep stdout for the READY
// line alone, so a test harness can read it without filtering.
console.info = console.warn; // eslint-disable-line no-console
console.log = console.warn; // eslint-disable-line no-console

const { default: Provider } = await import('oidc-provider');

const port = Number(process.argv[2] ?? process.env.IDP_PORT ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`idp: bad port ${process.argv[2] ?? process.env.IDP_PORT}`);
  process.exit(2);
}
const defaultResourceUrl = process.env.MEHO_RESOURCE || 'http://127.0.0.1:8080/mcp';
const consoleRedirects = (process.env.MEHO_CONSOLE_REDIRECT || `${new URL(defaultResourceUrl).origin}/console/`)
  .split(',')
  .map((uri) => uri.trim())
  .filter(Boolean);

// --- keys ----------------------------------------------------------------------------------------

function jwk(type, options, alg) {
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  const key = privateKey.export({ format: 'jwk' });
  return { ...key, alg, use: 'sig', kid: `${alg.toLowerCase()}-${crypto.randomUUID()}` };
}

// The first key of a type is the default for its algorithms; RS256 is the provider's default.
const jwks = {
  keys: [
    jwk('rsa', { modulusLength: 2048 }, 'RS256'),
    jwk('ec', { namedCurve: 'P-256' }, 'ES256'),
    jwk('ed25519', {}, 'EdDSA'),
  ],
};

// --- who is who ----------------------------------------------------------------------------------

const TENANT_A_ADMIN = { tenant_id: 'a', tenant_role: 'tenant_admin', groups: ['ops'] };
const PROFILES = {
  'tenant-a-admin': { claims: TENANT_A_ADMIN },
  'tenant-a-reader': { claims: { tenant_id: 'a', tenant_role: 'read_only', groups: ['ops'] } },
  'tenant-a-agent': { claims: { tenant_id: 'a', tenant_role: 'operator', groups: ['ops'] } },
  'tenant-b-admin': { claims: { tenant_id: 'b', tenant_role: 'tenant_admin', groups: ['ops'] } },
  'no-tenant': { claims: { groups: ['ops'] } },
  'tenant-a-es256': { claims: TENANT_A_ADMIN, alg: 'ES256' },
  'tenant-a-eddsa': { claims: TENANT_A_ADMIN, alg: 'EdDSA' },
  'no-scope': { claims: TENANT_A_ADMIN, scope: 'openid' },
};
const RESOURCE_SCOPE = 'mcp:tools mcp:feed';
const ACCESS_TOKEN_TTL = 600;

const clients = [
  ...Object.keys(PROFILES).map((clientId) => ({
    client_id: clientId,
    client_secret: `${clientId}-secret`,
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  })),
  {
    client_id: 'meho-cli',
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
  },
  {
    client_id: 'meho-console',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: consoleRedirects,
  },
];

function originOf(uri) {
  try {
    return new URL(uri).origin;
  } catch {
    return undefined;
  }
}

// --- the provider --------------------------------------------------------------------------------

const configuration = {
  clients,
  jwks,
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access'],
  // The console's token request comes from the browser: allow exactly its redirect URIs' origins.
  clientBasedCORS(_ctx, origin, client) {
    return client.redirectUris.some((uri) => originOf(uri) === origin);
  },
  claims: { openid: ['sub'], tenant: ['tenant_id', 'tenant_role', 'groups'] },
  // Device-flow and console logins: any name; known names carry the matching profile's claims.
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...(PROFILES[id]?.claims ?? {}) };
      },
    };
  },
  // Claims added to every JWT access token: the account's profile for user tokens, the client's
  // for client_credentials tokens.
  async extraTokenClaims(_ctx, token) {
    const profile = PROFILES[token.accountId ?? token.clientId];
    return profile ? { ...profile.claims } : undefined;
  },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => defaultResourceUrl,
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, resourceIndicator, client) {
        const profile = PROFILES[client?.clientId];
        return {
          scope: profile?.scope ?? RESOURCE_SCOPE,
          audience: resourceIndicator,
          accessTokenTTL: ACCESS_TOKEN_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: profile?.alg ?? 'RS256' } },
        };
      },
    },
  },
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    DeviceCode: 600,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    RefreshToken: 3600,
    Session: 3600,
  },
};

const server = await new Promise((resolve, reject) => {
  // The issuer needs the port, and port 0 is only known after listen: bind first, then build
  // the provider with the real issuer and hand it the requests.
  let handler = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  import('node:http').then(({ createServer }) => {
    const srv = createServer((req, res) => handler(req, res));
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const issuer = `http://127.0.0.1:${srv.address().port}`;
      const provider = new Provider(issuer, configuration);
      provider.on('server_error', (_ctx, err) => console.error('idp server_error:', err));
      handler = provider.callback();
      srv.issuer = issuer;
      resolve(srv);
    });
  }, reject);
});

process.stdout.write(`IDP READY ${server.issuer}\n`);

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
