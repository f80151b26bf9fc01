// Loads each configuration given on stdin (a JSON array) into the built module under one
// capability profile of the test host, and prints what on_configure answered and logged:
// the module's own verdict, which `api-guard check` must match (tests/cli.rs).
//   node configure.mjs MODULE.wasm PROFILE < configs.json
import { readFileSync } from "node:fs";
import { Host } from "./proxy_host.mjs";

const [wasm, profile] = process.argv.slice(2);
const module = await WebAssembly.compile(readFileSync(wasm));
const configs = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const config of configs) {
  const h = new Host(module, profile);
  const ok = await h.start(config);
  out.push({ ok, traps: h.traps.length, logs: h.logs.map(([, m]) => m) });
}
process.stdout.write(JSON.stringify(out));
