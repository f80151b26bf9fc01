// A real OpenID provider for api-guard's end-to-end tests: npm's oidc-provider on 127.0.0.1,
// issuing RFC 9068 JWT access tokens through client_credentials with a resource indicator.
// Usage: node server.mjs PORT KEYS_JSON   (KEYS_JSON: private JWKs; the first one signs).
// Restarting it with another key list is how the tests rotate keys.
import { readFileSync } from "node:fs";
import Provider from "oidc-provider";

const [port, keysFile] = process.argv.slice(2);
const keys = JSON.parse(readFileSync(keysFile, "utf8"));
const issuer = `http://127.0.0.1:${port}`;
const RESOURCE = "api://orders";

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
  ],
  jwks: { keys },
  scopes: ["openid", "orders:read", "orders:write"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
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
provider.listen(Number(port), "127.0.0.1", () => {
  console.log(`idp listening on ${issuer}`);
});
