// An MCP client's view of a protected API, through the MCP TypeScript SDK's own RFC 9728
// discovery: the first request without a token, the `resource_metadata` it reads from the
// 401's challenge, and the protected-resource metadata it loads and validates (the SDK's
// schema), both from that URL and by the SDK's path-aware well-known lookup.
//
//   node tests/mcp/discover.mjs PORT RESOURCE PATH
//
// RESOURCE's origin is mapped to the Envoy on 127.0.0.1:PORT. Prints one JSON object.

import { argv } from "node:process";
import {
  discoverOAuthProtectedResourceMetadata,
  extractWWWAuthenticateParams,
} from "@modelcontextprotocol/sdk/client/auth.js";

const [port, resource, path] = argv.slice(2);
const origin = new URL(resource).origin;
const local = `http://127.0.0.1:${port}`;
const fetchFn = (url, init) => fetch(String(url).replace(origin, local), init);

const first = await fetchFn(new URL(path, resource), {});
const { resourceMetadataUrl } = extractWWWAuthenticateParams(first);
const out = { status: first.status, resource_metadata_url: resourceMetadataUrl ? String(resourceMetadataUrl) : null };
if (resourceMetadataUrl) {
  out.metadata = await discoverOAuthProtectedResourceMetadata(resource, { resourceMetadataUrl }, fetchFn);
}
out.discovered = await discoverOAuthProtectedResourceMetadata(resource, {}, fetchFn).catch((e) => ({ error: String(e) }));
console.log(JSON.stringify(out));
