// A real OpenID provider for api-guard's end-to-end tests: npm's oidc-provider on 127.0.0.1,
// issuing RFC 9068 JWT access tokens through client_credentials with a resource indicator.
// Usage: node server.mjs PORT KEYS_JSON   (KEYS_JSON: private JWKs; the first one signs).
// PORT 0 lets the system pick a free port; the issuer is made from the port actually bound,
// and the line "idp listening on ISSUER" on stdout says it. Restarting it on that port with
// another key list is how the tests rotate keys. A failed bind exits 1 with the error on stderr.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import Provider from "oidc-provider";

const [port, keysFile] = process.argv.slice(2);
const keys = JSON.parse(readFileSync(keysFile, "utf8"));
const RESOURCE = "api://orders";
// Tokens for this resource are opaque: the API learns about them by introspection.
const OPAQUE = "api://opaque";
let introspections = 0;

const server = createServer();
server.on("error", (e) => {
  console.error(`idp cannot listen: ${e.code ?? ""} ${e.message}`);
  process.exit(1);
});
server.listen(Number(port), "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = makeProvider(issuer);
  // How many introspection requests arrived (GET /test/introspections), for the tests.
  provider.use(async (ctx, next) => {
    if (ctx.path === "/test/introspections") {
      ctx.body = { count: introspections };
      return;
    }
    if (ctx.path === "/token/introspection") introspections++;
    await next();
  });
  server.on("request", provider.callback());
  console.log(`idp listening on ${issuer}`);
});

function makeProvider(issuer) {
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "orders-client",
      client_secret: "orders-client-secret-for-tests-only",
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      scope: "orders:read orders:write",
    },
    {
      // Its access tokens are bound to the TLS client certificate it presents (RFC 8705).
      client_id: "bound-client",
      client_secret: "bound-client-secret-for-tests-only",
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      scope: "orders:read orders:write",
      tls_client_certificate_bound_access_tokens: true,
    },
  ],
  jwks: { keys },
  scopes: ["openid", "orders:read", "orders:write"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    // A token request with a DPoP proof gets a token bound to the proof's key (cnf.jkt).
    dPoP: { enabled: true },
    // The tests reach the token endpoint over plain HTTP on loopback, so the client's
    // certificate arrives the way a TLS-terminating proxy forwards it: URL-encoded PEM in a
    // header. The provider itself computes the cnf.x5t#S256 it binds.
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      getCertificate: (ctx) => {
        const pem = ctx.get("x-client-certificate");
        return pem ? decodeURIComponent(pem) : undefined;
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        if (resource === OPAQUE) {
          return { scope: "orders:read orders:write", audience: OPAQUE, accessTokenTTL: 300, accessTokenFormat: "opaque" };
        }
        if (resource !== RESOURCE) throw new Error("unknown resource");
        return {
          scope: "orders:read orders:write",
          audience: RESOURCE,
          accessTokenTTL: 300,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: keys[0].alg ?? "RS256" } },
        };
      },
    },
  },
});
provider.proxy = false;
return provider;
}
