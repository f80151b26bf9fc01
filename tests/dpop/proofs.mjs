// DPoP as a real client does it, with npm `dpop` (keys and proofs by WebCrypto): a DPoP-bound
// access token from the test OpenID provider (its `dPoP` feature binds it to the proof's key),
// then one proof per case for requests to api-guard at ORIGIN (the scheme and authority its
// requests will carry).
//
//   node tests/dpop/proofs.mjs IDP_PORT ORIGIN
//
// Prints {token, cases: [{name, method, path, proof}]}. The `stale` proof is made six seconds
// before the others.

import { argv } from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
import { generateKeyPair, generateProof } from "dpop";

const [idpPort, api] = argv.slice(2);
const issuer = `http://127.0.0.1:${idpPort}`;
const key = await generateKeyPair("ES256");
const other = await generateKeyPair("ES256");

const basic = Buffer.from("orders-client:orders-client-secret-for-tests-only").toString("base64");
const answer = await fetch(`${issuer}/token`, {
  method: "POST",
  headers: {
    authorization: `Basic ${basic}`,
    "content-type": "application/x-www-form-urlencoded",
    dpop: await generateProof(key, `${issuer}/token`, "POST"),
  },
  body: "grant_type=client_credentials&resource=api%3A%2F%2Forders&scope=orders%3Aread",
});
const issued = await answer.json();
if (issued.token_type !== "DPoP") throw new Error(`not a DPoP token: ${JSON.stringify(issued)}`);
const token = issued.access_token;

const cases = [];
const proof = async (name, method, path, { signer = key, htu = `${api}${path}`, htm = method, ath = true } = {}) => {
  cases.push({ name, method, path, proof: await generateProof(signer, htu, htm, undefined, ath ? token : undefined) });
};
await proof("stale", "GET", "/orders/stale");
await sleep(6000);
await proof("valid", "GET", "/orders/valid?page=2");
await proof("post", "POST", "/orders/post");
await proof("wrong_method", "GET", "/orders/wrong-method", { htm: "POST" });
await proof("wrong_url", "GET", "/orders/wrong-url", { htu: `${api}/elsewhere` });
await proof("no_ath", "GET", "/orders/no-ath", { ath: false });
await proof("wrong_key", "GET", "/orders/wrong-key", { signer: other });
console.log(JSON.stringify({ token, cases }));
