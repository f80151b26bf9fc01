// A small Proxy-Wasm host for tests: loads the built api_guard.wasm (under Node's V8 and WASI)
// and plays a gateway's part with one of three capability profiles:
//
//   envoy   every call api-guard makes is implemented; `end_of_stream` is meaningful; headers
//           held with Pause while the body callbacks run (allow_on_headers_stop_iteration);
//   kong    ngx_wasm_module: `end_of_stream` is always false on headers, the request body comes
//           whole in one callback, calls it lacks *trap* (proxy_get_status, proxy_done,
//           proxy_close_stream, gRPC, plugin_vm_id is not a property), local-response bodies
//           get a trailing newline, response headers cannot be held;
//   apisix  wasm-nginx-module: no on_vm_start, no timers, no shared data, no host time, no
//           body replacement, no whole-map header setting (all return Unimplemented), property
//           reads outside a request fail, request body callbacks only after the filter sets
//           `wasm_process_req_body`, local responses keep their headers (set_resp_header per pair), metrics are no-ops,
//           on_configure runs lazily inside the first request of each route configuration, in a root
//           context of its own.
//
// The facts come from ../shared/reference/hosts.md (sections A-C) and from what the module did
// in the two nginx engines (Kong/ngx_wasm_module, api7/wasm-nginx-module), with the engine
// source that explains each where it is cited below. A trap is recorded, never
// hidden: the scenarios assert there are none.

import { WASI } from "node:wasi";

const OK = 0, NOT_FOUND = 1, BAD_ARGUMENT = 2, UNIMPLEMENTED = 12;
const MAP = { 0: "requestHeaders", 2: "responseHeaders", 6: "callHeaders" };
const BUFFER = { 0: "requestBody", 1: "responseBody", 4: "callBody", 7: "pluginConfiguration" };

export class Trap extends Error {}

const PROFILES = {
  envoy: { vmStart: true, timers: true, shared: true, hostTime: true, setBuffer: true, setMap: true,
           headersEos: true, holdHeaders: true, bodyOptIn: false, localHeaders: true, localNewline: false,
           missing: "unimplemented",
           properties: { plugin_vm_id: "api_guard", plugin_root_id: "", "source\u0000address": "203.0.113.5:41000" } },
  kong: { vmStart: true, timers: true, shared: true, hostTime: true, setBuffer: true, setMap: true,
          headersEos: false, holdHeaders: true, bodyOptIn: false, localHeaders: true, localNewline: true,
          missing: "trap", properties: { plugin_root_id: "", "source\u0000address": "203.0.113.5" } },
  // APISIX keeps local-response headers: proxy_send_local_response sets every pair with
  // set_resp_header (wasm-nginx-module src/http/ngx_http_wasm_api.c, since 0.2.0); verified on
  // a real wasm-nginx-module 0.7.0 (a 401 kept its WWW-Authenticate).
  apisix: { vmStart: false, timers: false, shared: false, hostTime: false, setBuffer: false, setMap: false,
            headersEos: false, holdHeaders: false, bodyOptIn: true, localHeaders: true, localNewline: false,
            missing: "unimplemented", properties: { remote_addr: "203.0.113.5" } },
};

function encodeMap(pairs) {
  const enc = new TextEncoder();
  const parts = pairs.map(([k, v]) => [enc.encode(k), typeof v === "string" ? enc.encode(v) : v]);
  let size = 4 + parts.length * 8;
  for (const [k, v] of parts) size += k.length + v.length + 2;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, parts.length, true);
  let off = 4;
  for (const [k, v] of parts) { dv.setUint32(off, k.length, true); dv.setUint32(off + 4, v.length, true); off += 8; }
  for (const [k, v] of parts) { out.set(k, off); off += k.length + 1; out.set(v, off); off += v.length + 1; }
  return out;
}

function decodeMap(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(0, true);
  const lens = [];
  for (let i = 0; i < n; i++) lens.push([dv.getUint32(4 + i * 8, true), dv.getUint32(8 + i * 8, true)]);
  let off = 4 + n * 8;
  const dec = new TextDecoder();
  return lens.map(([kl, vl]) => {
    const k = dec.decode(bytes.subarray(off, off + kl)); off += kl + 1;
    const v = dec.decode(bytes.subarray(off, off + vl)); off += vl + 1;
    return [k, v];
  });
}

export class Host {
  constructor(module, profile, { shared } = {}) {
    this.module = module;
    this.name = profile;
    this.p = PROFILES[profile];
    this.logs = [];
    this.traps = [];
    this.unimplemented = [];
    this.calls = [];          // outgoing HTTP calls: {token, upstream, headers}
    this.shared = shared ?? new Map();
    this.tick = 0;
    this.nextContext = 2;
    this.root = 1;
    this.metrics = new Map();
  }

  mem() { return new Uint8Array(this.instance.exports.memory.buffer); }
  dv() { return new DataView(this.instance.exports.memory.buffer); }
  read(ptr, len) { return this.mem().slice(ptr, ptr + len); }
  str(ptr, len) { return new TextDecoder().decode(this.read(ptr, len)); }

  // Hands `bytes` to the guest: allocated by the guest, pointer and size written out.
  give(bytes, ptrOut, sizeOut) {
    const ptr = bytes.length ? this.instance.exports.proxy_on_memory_allocate(bytes.length) : 0;
    if (bytes.length) this.mem().set(bytes, ptr);
    this.dv().setUint32(ptrOut, ptr, true);
    this.dv().setUint32(sizeOut, bytes.length, true);
    return OK;
  }

  missing(name) {
    if (this.p.missing === "trap") {
      const t = new Trap(`host trap (function not yet implemented): ${name}`);
      this.traps.push(t.message);
      throw t;
    }
    this.unimplemented.push(name);
    return UNIMPLEMENTED;
  }

  imports() {
    const h = this;
    const env = {
      proxy_log(level, ptr, len) { h.logs.push([level, h.str(ptr, len)]); return OK; },
      proxy_get_current_time_nanoseconds(out) {
        if (!h.p.hostTime) return h.missing("proxy_get_current_time_nanoseconds");
        h.dv().setBigUint64(out, BigInt(Date.now()) * 1000000n, true); return OK;
      },
      proxy_set_tick_period_milliseconds(ms) {
        if (!h.p.timers) return h.missing("proxy_set_tick_period_milliseconds");
        h.tick = ms; return OK;
      },
      proxy_get_buffer_bytes(type, start, max, ptrOut, sizeOut) {
        // Sizes are u32 in the ABI (a guest asking for "all" passes 0xffffffff); wasm hands
        // them to JS as signed numbers.
        [start, max] = [start >>> 0, max >>> 0];
        const buf = h.buffers[BUFFER[type]];
        if (buf === undefined) return NOT_FOUND;
        return h.give(buf.subarray(start, Math.min(buf.length, start + max)), ptrOut, sizeOut);
      },
      proxy_set_buffer_bytes(type, start, size, ptr, len) {
        if (!h.p.setBuffer) return h.missing("proxy_set_buffer_bytes");
        [start, size] = [start >>> 0, size >>> 0];
        const buf = h.buffers[BUFFER[type]] ?? new Uint8Array();
        const data = h.read(ptr, len);
        const out = new Uint8Array(buf.length - Math.min(size, buf.length - start) + data.length);
        out.set(buf.subarray(0, start)); out.set(data, start); out.set(buf.subarray(start + size), start + data.length);
        h.buffers[BUFFER[type]] = out; return OK;
      },
      proxy_get_header_map_pairs(type, ptrOut, sizeOut) {
        const m = h.maps[MAP[type]];
        if (!m) return NOT_FOUND;
        return h.give(encodeMap(m), ptrOut, sizeOut);
      },
      proxy_set_header_map_pairs(type, ptr, len) {
        if (!h.p.setMap) return h.missing("proxy_set_header_map_pairs");
        const next = decodeMap(h.read(ptr, len));
        // Kong: replacing the response map keeps the upstream's Content-Length (nginx holds it
        // in headers_out.content_length_n, which ngx_http_wasm_clear_resp_headers never walks).
        const length = (h.maps[MAP[type]] ?? []).find(([n]) => n === "content-length");
        if (h.name === "kong" && type === 2 && length && !next.some(([n]) => n === "content-length")) next.push(length);
        h.maps[MAP[type]] = next; return OK;
      },
      proxy_get_header_map_value(type, kp, kl, ptrOut, sizeOut) {
        const m = h.maps[MAP[type]] ?? []; const k = h.str(kp, kl);
        const e = m.find(([n]) => n === k);
        if (!e) return NOT_FOUND;
        return h.give(new TextEncoder().encode(e[1]), ptrOut, sizeOut);
      },
      proxy_replace_header_map_value(type, kp, kl, vp, vl) {
        const m = h.maps[MAP[type]]; const k = h.str(kp, kl).toLowerCase(); const v = h.str(vp, vl);
        if (h.responseSent && type === 2) { h.lateHeaderEdits.push(k); return OK; }
        const i = m.findIndex(([n]) => n === k);
        if (i >= 0) { m[i] = [k, v]; for (let j = m.length - 1; j > i; j--) if (m[j][0] === k) m.splice(j, 1); }
        else m.push([k, v]);
        return OK;
      },
      proxy_add_header_map_value(type, kp, kl, vp, vl) {
        h.maps[MAP[type]].push([h.str(kp, kl).toLowerCase(), h.str(vp, vl)]); return OK;
      },
      proxy_remove_header_map_value(type, kp, kl) {
        const k = h.str(kp, kl).toLowerCase();
        if (h.responseSent && type === 2) { h.lateHeaderEdits.push(k); return OK; }
        // Kong: the header is marked removed (`hash = 0`) but nginx's proxy module forwards
        // every `headers_in` entry (ngx_http_proxy_create_request), so it reaches the upstream.
        if (h.name === "kong" && type === 0) return OK;
        h.maps[MAP[type]] = h.maps[MAP[type]].filter(([n]) => n !== k); return OK;
      },
      proxy_get_property(pp, pl, ptrOut, sizeOut) {
        const path = h.str(pp, pl);
        if (h.name === "apisix" && !h.inRequest) return BAD_ARGUMENT;
        const v = h.connectionProperty(path) ?? h.p.properties[path];
        if (v === undefined) return NOT_FOUND;
        return h.give(typeof v === "string" ? new TextEncoder().encode(v) : v, ptrOut, sizeOut);
      },
      proxy_set_property(pp, pl, vp, vl) {
        const path = h.str(pp, pl);
        h.properties[path] = h.str(vp, vl);
        return OK;
      },
      proxy_send_local_response(status, dp, dl, bp, bl, hp, hl, grpc) {
        // Kong: once the response headers have left, a local response traps the instance
        // ("host trap (bad usage): response already sent", ngx_proxy_wasm host functions).
        if (h.name === "kong" && h.responseSent) {
          const t = new Trap("host trap (bad usage): response already sent");
          h.traps.push(t.message);
          throw t;
        }
        let body = h.read(bp, bl);
        if (h.p.localNewline) { const b = new Uint8Array(body.length + 1); b.set(body); b[body.length] = 10; body = b; }
        const headers = h.p.localHeaders && hl ? decodeMap(h.read(hp, hl)) : [];
        h.local = { status, headers, body: new TextDecoder().decode(body) };
        return OK;
      },
      proxy_continue_stream(type) { h.continued.push(type); return OK; },
      proxy_define_metric(type, np, nl, idOut) {
        const id = h.metrics.size + 1; h.metrics.set(id, { name: h.str(np, nl), value: 0n });
        h.dv().setUint32(idOut, h.name === "apisix" ? 0 : id, true); return OK;
      },
      proxy_increment_metric(id, delta) {
        const m = h.metrics.get(id);
        if (m && h.name !== "apisix") m.value += BigInt(delta);
        return OK;
      },
      proxy_get_shared_data(kp, kl, vOut, sOut, casOut) {
        if (!h.p.shared) return h.missing("proxy_get_shared_data");
        const e = h.shared.get(h.str(kp, kl));
        if (!e) return NOT_FOUND;
        h.dv().setUint32(casOut, e.cas, true);
        return h.give(e.value, vOut, sOut);
      },
      proxy_set_shared_data(kp, kl, vp, vl, cas) {
        if (!h.p.shared) return h.missing("proxy_set_shared_data");
        const k = h.str(kp, kl); const e = h.shared.get(k);
        // Kong: setting an existing key without its CAS is a mismatch (Envoy overwrites).
        if (e && ((cas !== 0 && cas !== e.cas) || (cas === 0 && h.name === "kong"))) return 8;
        h.shared.set(k, { value: h.read(vp, vl), cas: (e?.cas ?? 0) + 1 }); return OK;
      },
      proxy_http_call(up, ul, hp, hl, bp, bl, tp, tl, timeout, tokenOut) {
        if (h.name === "apisix" && !h.inRequest) return BAD_ARGUMENT;
        const token = h.calls.length + 1;
        h.calls.push({ token, upstream: h.str(up, ul), headers: decodeMap(h.read(hp, hl)), context: h.current });
        h.dv().setUint32(tokenOut, token, true); return OK;
      },
      proxy_set_effective_context(id) { return OK; },
    };
    // Everything else the SDK links is a call api-guard must never make on these hosts.
    for (const imp of WebAssembly.Module.imports(this.module)) {
      if (imp.module === "env" && !(imp.name in env)) env[imp.name] = () => h.missing(imp.name);
    }
    // Host calls counted by name (for measuring how many a request costs).
    this.counts = {};
    for (const [name, f] of Object.entries(env)) {
      env[name] = (...args) => { h.counts[name] = (h.counts[name] ?? 0) + 1; return f(...args); };
    }
    return env;
  }

  // Calls a guest export, recording a trap instead of throwing past the scenario.
  call(name, ...args) {
    try {
      return this.instance.exports[name](...args);
    } catch (e) {
      if (!(e instanceof Trap)) this.traps.push(`${name}: ${e.message}`);
      this.dead = true;
      return undefined;
    }
  }

  async start(config) {
    this.wasi = new WASI({ version: "preview1", args: [], env: {}, returnOnExit: true });
    this.instance = await WebAssembly.instantiate(this.module, {
      env: this.imports(), wasi_snapshot_preview1: this.wasi.wasiImport,
    });
    this.wasi.initialize(this.instance);
    this.buffers = {};
    this.maps = {};
    this.properties = {};
    this.call("proxy_on_context_create", 1, 0);
    if (this.p.vmStart) this.call("proxy_on_vm_start", 1, 0);
    return this.configure(config);
  }

  configure(config) {
    const bytes = new TextEncoder().encode(typeof config === "string" ? config : JSON.stringify(config));
    this.buffers.pluginConfiguration = bytes;
    if (this.name !== "apisix") {
      const ok = this.call("proxy_on_configure", this.root, bytes.length);
      return ok === 1;
    }
    // APISIX configures lazily: the Admin API stores any `conf`, and the first request on the
    // route creates a plugin context of its own for it (a new root context id) and calls
    // on_configure there, inside that request; a route update does it again with another id
    // (wasm-nginx-module src/http/ngx_http_wasm_api.c, apisix/wasm.lua `fetch_plugin_ctx`, not
    // cached on failure). A refused conf answers 503 "failed to fetch wasm plugin ctx" to every
    // request on the route, and nothing tells the user before that.
    this.root = this.nextContext++;
    this.inRequest = true;
    this.call("proxy_on_context_create", this.root, 0);
    const ok = this.call("proxy_on_configure", this.root, bytes.length);
    this.inRequest = false;
    this.rootFailed = ok !== 1;
    return ok === 1;
  }

  // The host answers a pending HTTP call (JWKS fetch) with `status` and `body`.
  answerCall(call, status, body) {
    this.maps.callHeaders = [[":status", String(status)]];
    this.buffers.callBody = new TextEncoder().encode(body);
    this.current = call.context;
    this.inRequest = true;
    this.call("proxy_on_http_call_response", call.context ?? this.root, call.token, 1, this.buffers.callBody.length, 0);
    this.inRequest = false;
  }

  // One request through the filter. `upstream(req)` answers it: {status, headers, body}.
  // `jwks` answers HTTP calls made while the request waits.
  /** Kong's response body delivery: 4k pieces; while the filter pauses, pieces accumulate up
   * to `proxy_wasm_response_body_buffers` (4 × 4k by default); a Pause with the buffers full
   * is logged as an error and the data passes unchanged (ngx_proxy_wasm body filter). */
  kongResponseBody(id) {
    const all = this.buffers.responseBody;
    const limit = 16384;
    const sent = [];
    let held = new Uint8Array();
    let pos = 0;
    while (!this.dead && !this.local && (pos < all.length || pos === 0)) {
      const piece = all.slice(pos, pos + 4096);
      pos += Math.max(piece.length, 1);
      const merged = new Uint8Array(held.length + piece.length);
      merged.set(held); merged.set(piece, held.length);
      this.buffers.responseBody = merged;
      const eos = pos >= all.length;
      const action = this.call("proxy_on_response_body", id, merged.length, eos ? 1 : 0);
      if (action === 1 && !eos && merged.length < limit) { held = this.buffers.responseBody; continue; }
      if (action === 1 && !eos) this.logs.push([4, "[error] pause with the response body buffers full: data passes"]);
      sent.push(this.buffers.responseBody);
      held = new Uint8Array();
    }
    const total = sent.reduce((n, b) => n + b.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const b of sent) { out.set(b, at); at += b.length; }
    this.buffers.responseBody = out;
  }

  /** The request's connection id as each host writes it: Envoy an 8-byte little-endian
   * integer (`connection.id`), Kong decimal text (`connection.id`), APISIX the nginx variable
   * `connection`. */
  connectionProperty(path) {
    const id = this.connection;
    if (id === undefined) return undefined;
    if (this.name === "envoy" && path === "connection\u0000id") {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, BigInt(id), true);
      return b;
    }
    if (this.name === "kong" && path === "connection\u0000id") return String(id);
    if (this.name === "apisix" && path === "connection") return String(id);
    return undefined;
  }

  request({ method = "GET", path = "/", headers = [], body = "", chunks, upstream, jwks, connection = 1 }) {
    this.connection = connection;
    const id = this.nextContext++;
    this.current = id;
    this.local = null;
    this.continued = [];
    this.responseSent = false;
    this.lateHeaderEdits = [];
    this.properties = {};
    this.inRequest = true;
    const bodyBytes = new TextEncoder().encode(body);
    const parts = chunks ?? (bodyBytes.length ? [bodyBytes] : []);
    this.maps.requestHeaders = [[":method", method], [":path", path], [":authority", "api.test"], [":scheme", "https"],
      ...headers.map(([k, v]) => [k.toLowerCase(), v])];
    const out = { id, local: null, forwarded: null, response: null };
    if (this.rootFailed) {
      // APISIX's answer when the route's plugin context could not be configured.
      this.logs.push([4, "[error] failed to fetch wasm plugin ctx"]);
      out.local = { status: 503, headers: [], body: "" };
      out.hostAnswered = true;
      this.inRequest = false;
      return out;
    }
    this.call("proxy_on_context_create", id, this.root);
    const eos = parts.length === 0;
    let last = this.call("proxy_on_request_headers", id, this.maps.requestHeaders.length, this.p.headersEos ? eos : false, 0);
    // Answer key-set fetches the request started, as the IdP would; the filter then resumes.
    // `jwks` is the body of every answer, or a function of the call giving it; an answer
    // may lead to another call (a discovery document, then its key set), answered in turn.
    for (let pending; (pending = this.calls.filter((c) => c.context === id && !c.answered)).length; ) {
      for (const c of pending) {
        c.answered = true;
        if (jwks !== undefined) {
          this.answerCall(c, 200, typeof jwks === "function" ? jwks(c) : jwks);
          this.current = id;
          this.inRequest = true;
        }
      }
      if (jwks === undefined) break;
    }
    if (!this.local && !this.dead && parts.length && (!this.p.bodyOptIn || this.properties.wasm_process_req_body)) {
      if (this.name === "envoy") {
        // Envoy: chunks as they arrive; a Pause keeps them buffered for the next call.
        let buffered = new Uint8Array();
        for (let i = 0; i < parts.length && !this.local && !this.dead; i++) {
          const next = new Uint8Array(buffered.length + parts[i].length);
          next.set(buffered); next.set(parts[i], buffered.length);
          buffered = next;
          this.buffers.requestBody = buffered;
          last = this.call("proxy_on_request_body", id, buffered.length, i === parts.length - 1);
        }
      } else {
        // Kong and APISIX: the whole body, once, at end of stream.
        this.buffers.requestBody = bodyBytes;
        last = this.call("proxy_on_request_body", id, bodyBytes.length, 1);
      }
    }
    out.local = this.local;
    if (this.dead) { out.trapped = true; return out; }
    if (!this.local && (last === 0 || this.continued.includes(0))) {
      const req = { headers: this.maps.requestHeaders, body: new TextDecoder().decode(this.buffers.requestBody ?? bodyBytes) };
      out.forwarded = req;
      const up = upstream ? upstream(req) : { status: 200, headers: [["content-type", "application/json"]], body: "{\"ok\":true}" };
      this.maps.responseHeaders = [[":status", String(up.status)], ...up.headers];
      this.buffers.responseBody = new TextEncoder().encode(up.body);
      const ra = this.call("proxy_on_response_headers", id, this.maps.responseHeaders.length, 0, 0);
      // Kong cannot hold response headers: they leave now, whatever the filter returned, and
      // a Pause without a local response is logged on every such response (ngx_wasm_module's
      // own on_phases test: `"ResponseHeaders" returned "PAUSE": local response expected but
      // none produced`); edits after this are lost.
      if (this.name === "kong") {
        if (ra === 1 && !this.local) this.logs.push([3, "[warn] \"ResponseHeaders\" returned \"PAUSE\": local response expected but none produced"]);
        this.responseSent = true;
      }
      if (!this.local && !this.dead && (!this.p.bodyOptIn || this.properties.wasm_process_resp_body)) {
        if (this.name === "kong") this.kongResponseBody(id);
        else this.call("proxy_on_response_body", id, this.buffers.responseBody.length, 1);
      }
      out.response = this.local
        ? { status: this.local.status, headers: this.local.headers, body: this.local.body }
        : { status: up.status, headers: this.maps.responseHeaders, body: new TextDecoder().decode(this.buffers.responseBody) };
    }
    if (this.name !== "apisix") this.call("proxy_on_log", id);
    this.call("proxy_on_done", id);
    this.call("proxy_on_delete", id);
    this.inRequest = false;
    out.trapped = this.dead === true;
    return out;
  }

  // One timer tick of the root context, as the host's timer would fire it (if one was set).
  runTick() {
    if (this.tick) this.call("proxy_on_tick", this.root);
  }

  // A counter's value, after a tick: counters batched in the VM reach the host on ticks.
  metric(name) {
    this.runTick();
    for (const m of this.metrics.values()) if (m.name === name) return Number(m.value);
    return 0;
  }

  // The sum of the series of a labelled metric (labels written into the name, see
  // src/policy/telemetry.rs) whose name starts with `prefix`, e.g.
  // "api_guard_requests_total.decision.denied.".
  series(prefix, { tick = true } = {}) {
    if (tick) this.runTick();
    let n = 0;
    for (const m of this.metrics.values()) if (m.name.startsWith(prefix)) n += Number(m.value);
    return n;
  }
}

export const header = (pairs, name) => pairs?.find(([k]) => k === name)?.[1];
