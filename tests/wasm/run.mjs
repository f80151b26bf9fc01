// Runs a wasm32-wasip1 test binary under Node's WASI (cargo's target runner), so the policy
// core's unit tests execute as wasm and not only natively. Proxy-Wasm imports (`env.*`) are
// absent outside a proxy; the core never calls them, and any call that does happen fails loudly.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env } from "node:process";

const [file, ...args] = argv.slice(2);
// `WASI_PREOPEN` names a folder a test may read (the same path inside as outside).
const preopens = env.WASI_PREOPEN ? { [env.WASI_PREOPEN]: env.WASI_PREOPEN } : {};
const wasi = new WASI({ version: "preview1", args: [file, ...args], env, preopens, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const imports = { wasi_snapshot_preview1: wasi.wasiImport };
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === "wasi_snapshot_preview1") continue;
  imports[imp.module] ??= {};
  imports[imp.module][imp.name] = () => {
    throw new Error(`host call ${imp.module}.${imp.name} is not available in the test runner`);
  };
}
const instance = await WebAssembly.instantiate(module, imports);
// The test binary also exports the module's `_initialize` (the Proxy-Wasm entry point), which
// Node refuses next to `_start`; hand WASI only what a command needs.
const { memory, _start } = instance.exports;
// Leave through Node's normal shutdown rather than process.exit(): exiting at once while V8
// still had wasm compile jobs in flight crashed Node 20 (SIGSEGV) after every test had passed.
process.exitCode = wasi.start({ exports: { memory, _start } });
