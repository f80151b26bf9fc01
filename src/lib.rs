//! # api-guard
//!
//! An API-security filter for the gateways people already run, built as one Proxy-Wasm module
//! (`wasm32-wasip1`) for Envoy, Kong and Apache APISIX.
//!
//! ## Design choices
//!
//! - **Fail closed.** A configuration that does not compile is refused at load time with the
//!   JSON path of the offending field; a request the policy cannot judge is denied.
//! - **A pure core, a thin host layer.** [`policy`] holds every rule and never touches the
//!   host; it takes plain data and returns decisions, so it is tested natively and as wasm.
//!   [`host`] translates Proxy-Wasm callbacks into core calls and back, and holds no policy.
//! - **Compile once.** The configuration is parsed and compiled into ready-to-use structures
//!   (route matchers, resolved limits) in `on_configure`; nothing is parsed per request.
//! - **One shape of denial.** Every refusal is an RFC 9457 `application/problem+json` body
//!   with a stable `type` per reason; reasons are a closed enum with one mapping to status,
//!   headers, metric and log line ([`policy::denial`]).
//! - **No panics on input.** Clippy denies `unwrap`, `expect`, `panic!` and indexing outside
//!   tests; a panic would kill the VM and every later request on that worker.
//! - **Nothing secret in logs.** Log lines carry a reason, a route name and a request id, never a
//!   header value.

pub mod host;
pub mod policy;
