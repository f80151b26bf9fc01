// Module size by dependency: `make size-by-crate`. Reads a module built with its name section
// (the release profile with `strip = false`), attributes every function body to the crate that
// defines the function (for a method of a generic type, the type's crate), groups the crates,
// and prints a Markdown table of code bytes and of TurboFan compile time (V8 compiling every
// function up front with Liftoff off, as Envoy does; from `--trace-wasm-compilation-times` of
// a child Node), then the functions that take longest to compile. The data section (constant
// tables) is not named per crate and is given as one line.

import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

const GROUPS = [
  ["api-guard", /^api_guard$/],
  ["JSON Schema validator (`boon`)", /^(boon|appendlist|ahash|once_cell)$/],
  ["ECMA-262 pattern engine (`regress`, `memchr`)", /^(regress|memchr)$/],
  ["URL and IDNA (`url`, `idna`, `icu_*`, `fluent-uri`, …)", /^(url|idna|idna_adapter|icu_.*|fluent_uri|percent_encoding|form_urlencoded|utf8_iter|zerovec|zerofrom|yoke|tinystr|writeable|litemap|potential_utf|smallvec|borrow_or_share|ref_cast)$/],
  ["`serde`, `serde_json` (with `indexmap`)", /^(serde|serde_core|serde_json|itoa|ryu|zmij|indexmap|equivalent)$/],
  ["`jwt-compact` (and `anyhow`, its error type)", /^(jwt_compact|anyhow)$/],
  ["`ed25519-compact`", /^ed25519_compact$/],
  ["hashing (`sha2`, `hmac`, `digest`, `subtle`)", /^(sha2|hmac|digest|block_buffer|crypto_common|generic_array|cpufeatures|subtle)$/],
  ["`base64`", /^base64(ct)?$/],
  ["`proxy-wasm`", /^proxy_wasm$/],
  ["Rust standard library (`core`, `alloc`, `std`, WASI)", /^(core|alloc|std|rustc_demangle|hashbrown|foldhash|compiler_builtins|__rustc|___rust|wasi|getrandom)$/],
];

const file = process.argv[2];
const b = readFileSync(file);
let i = 8;
const leb = () => {
  let r = 0, s = 0, x;
  do { x = b[i++]; r += (x & 0x7f) * 2 ** s; s += 7; } while (x & 0x80);
  return r;
};
const names = new Map();
let imports = 0, bodies = [], codeBytes = 0, dataBytes = 0;
while (i < b.length) {
  const id = b[i++], n = leb(), end = i + n;
  if (id === 2) { // imports: they take the first function indices
    for (let k = leb(); k > 0; k--) {
      // module, then name: a length, then that many bytes (`i += leb()` would read `i` first)
      for (let s = 0; s < 2; s++) { const len = leb(); i += len; }
      const kind = b[i++];
      if (kind === 0) { leb(); imports++; }
      else if (kind === 1) { i++; const f = leb(); leb(); if (f & 1) leb(); }
      else if (kind === 2) { const f = leb(); leb(); if (f & 1) leb(); }
      else if (kind === 3) { i += 2; }
    }
  } else if (id === 10) {
    codeBytes = n;
    for (let k = leb(); k > 0; k--) { const len = leb(); bodies.push(len); i += len; }
  } else if (id === 11) {
    dataBytes = n;
  } else if (id === 0) {
    const nl = leb(), name = b.subarray(i, i + nl).toString(); i += nl;
    if (name === "name") {
      while (i < end) {
        const sub = b[i++], sl = leb(), se = i + sl;
        if (sub === 1) for (let k = leb(); k > 0; k--) { const idx = leb(), l = leb(); names.set(idx, b.subarray(i, i + l).toString()); i += l; }
        i = se;
      }
    }
  }
  i = end;
}
if (names.size === 0) throw new Error(`${file} has no name section: build it with CARGO_PROFILE_RELEASE_STRIP=false`);

// The defining crate of a mangled symbol (legacy `_ZN…E` or v0 `_R…`).
function crateOf(sym) {
  const STD = ["core", "alloc", "std"];
  if (sym.startsWith("_R")) {
    // Every crate the symbol names, in order; a std item made for another crate's type
    // (`core::ptr::drop_in_place::<api_guard::…>`) counts as that crate's.
    const crates = [...sym.matchAll(/C(?:s[0-9A-Za-z]*_)?(\d+)([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) =>
      m[2].slice(0, Number(m[1])),
    );
    if (crates.length === 0) return "other";
    return STD.includes(crates[0]) ? (crates.find((c) => !STD.includes(c)) ?? crates[0]) : crates[0];
  }
  if (!sym.startsWith("_ZN")) return "other";
  // Generic code of the standard library made for another crate's type (drop glue,
  // collections, sorting) counts as that crate's: `core::ptr::drop_in_place<api_guard::…>`.
  // (Legacy symbols name type arguments only in such `<…>` segments; `RawVec<T>::grow_one`
  // and the like cannot be told apart and stay the standard library's.)
  const std = /^_ZN\d+(core|alloc|std)\d/.exec(sym);
  if (std) {
    // The first segment of each path inside `<…>`.
    const inner = [...sym.matchAll(/(?:\$LT\$|\$C\$|\$u20\$|\$RF\$|\$BP\$)([A-Za-z_][A-Za-z0-9_]*)\.\./g)].map((m) => m[1]);
    return inner.find((c) => !STD.includes(c)) ?? std[1];
  }
  const m = /^_ZN(\d+)/.exec(sym);
  let seg = sym.slice(m[0].length, m[0].length + Number(m[1]));
  if (!seg.startsWith("_$LT$") && !seg.startsWith("$LT$")) return seg;
  // `<Type as Trait>::f` or `<Type>::f`: the type's crate, else the trait's.
  let inner = seg.replace(/^_?\$LT\$/, "").replace(/^(\$RF\$(mut\$u20\$)?)+/, "").replace(/^\$BP\$(mut|const)\$u20\$/, "");
  const path = /^([A-Za-z_][A-Za-z0-9_]*)\.\./.exec(inner);
  if (path) return path[1];
  const trait = /\$u20\$as\$u20\$([A-Za-z_][A-Za-z0-9_]*)\.\./.exec(inner);
  return trait ? trait[1] : "other";
}

// TurboFan's time per function index, from a Node that compiles the module and exits.
const trace = execFileSync(
  process.execPath,
  ["--no-liftoff", "--no-wasm-lazy-compilation", "--trace-wasm-compilation-times", "-e",
   "WebAssembly.compile(require('fs').readFileSync(process.argv[1]))", file],
  { encoding: "utf8", maxBuffer: 64 << 20 },
);
const compileMs = new Map();
for (const m of trace.matchAll(/#(\d+) using TurboFan, took (\d+) ms/g)) compileMs.set(Number(m[1]), Number(m[2]));

const byGroup = new Map();
const msByGroup = new Map();
const unmatched = new Map();
bodies.forEach((len, k) => {
  const crate = crateOf(names.get(imports + k) ?? "");
  const g = GROUPS.find(([, re]) => re.test(crate));
  const key = g ? g[0] : "other (allocator, wasm glue, small crates)";
  byGroup.set(key, (byGroup.get(key) ?? 0) + len);
  msByGroup.set(key, (msByGroup.get(key) ?? 0) + (compileMs.get(imports + k) ?? 0));
  if (!g) unmatched.set(crate, (unmatched.get(crate) ?? 0) + len);
});

// SIZES_DUMP=file: every function's body size and name, one per line (to compare builds).
if (process.env.SIZES_DUMP) {
  const lines = bodies.map((len, k) => `${len}\t${names.get(imports + k) ?? ""}`);
  (await import("node:fs")).writeFileSync(process.env.SIZES_DUMP, lines.join("\n") + "\n");
}

const kb = (n) => (n / 1024).toFixed(0);
const total = bodies.reduce((a, n) => a + n, 0);
const totalMs = [...compileMs.values()].reduce((a, n) => a + n, 0);
const pct = (n, of) => `${((100 * n) / of).toFixed(1)}%`;
console.log(`${file}: ${b.length} bytes with its name section; code section ${codeBytes} bytes (${bodies.length} functions), data section ${dataBytes} bytes; TurboFan ${totalMs} ms of compile over all functions`);
console.log();
console.log("| code of | KiB | share of the code | TurboFan ms | share of the compile |");
console.log("| --- | ---: | ---: | ---: | ---: |");
for (const [g, n] of [...byGroup].sort((x, y) => y[1] - x[1])) {
  const ms = msByGroup.get(g) ?? 0;
  console.log(`| ${g} | ${kb(n)} | ${pct(n, total)} | ${ms} | ${pct(ms, totalMs)} |`);
}
console.log(`| data section (constant tables, all crates) | ${kb(dataBytes)} | — | — | — |`);
console.log();
console.log("Longest to compile (ms, body bytes, function):");
const slowest = [...compileMs].sort((x, y) => y[1] - x[1]).slice(0, Number(process.env.SIZES_TOP ?? 15));
for (const [idx, ms] of slowest) console.log(`  ${ms} ${bodies[idx - imports]} ${names.get(idx)}`);
if (process.env.SIZES_VERBOSE) console.log([...unmatched].sort((x, y) => y[1] - x[1]).slice(0, 20));

// The whole module's compile as Envoy does it (Liftoff off, every function up front), timed
// inside a child Node around `WebAssembly.compile` alone: CPU of all its threads, wall time and
// the process's RSS after. Per-function times above are rounded to V8's timer and undercount
// small functions, so this is the figure to compare builds by. `SIZES_BEFORE=old.wasm` compiles
// that module too, interleaved round by round. Medians of `SIZES_ROUNDS` (default 5).
const compileOnce = (wasm) => {
  const script = `
    const buf = require("fs").readFileSync(process.argv[1]);
    const cpu = process.cpuUsage(), t = process.hrtime.bigint();
    WebAssembly.compile(buf).then(() => {
      const c = process.cpuUsage(cpu), wall = Number(process.hrtime.bigint() - t) / 1e6;
      console.log(JSON.stringify({ cpu: (c.user + c.system) / 1000, wall, rss: process.memoryUsage().rss }));
    });`;
  const out = execFileSync(process.execPath, ["--no-liftoff", "--no-wasm-lazy-compilation", "-e", script, wasm], { encoding: "utf8" });
  return JSON.parse(out);
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const modules = process.env.SIZES_BEFORE ? [["before", process.env.SIZES_BEFORE], ["this", file]] : [["this", file]];
const runs = new Map(modules.map(([label]) => [label, []]));
for (let r = 0; r < Number(process.env.SIZES_ROUNDS ?? 5); r++) {
  for (const [label, wasm] of modules) runs.get(label).push(compileOnce(wasm));
}
console.log();
console.log("V8 compiling the whole module (Liftoff off), medians:");
for (const [label, wasm] of modules) {
  const rs = runs.get(label);
  const size = readFileSync(wasm).length;
  console.log(`  ${label}: ${wasm} (${size} bytes): ${median(rs.map((x) => x.cpu)).toFixed(0)} ms CPU, ${median(rs.map((x) => x.wall)).toFixed(0)} ms wall, RSS after ${(median(rs.map((x) => x.rss)) / 1048576).toFixed(1)} MiB`);
}
