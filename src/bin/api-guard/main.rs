//! `api-guard`, the command line: check a policy for a host, explain what it does with a
//! request, import an OpenAPI document, render a host configuration.
//!
//! Built from the same crate as the module: `check` and `explain` run the module's own load and
//! decision code natively, so a policy `check` accepts for a host is one the module accepts
//! there, and `explain` says what the module would answer.

use std::process::ExitCode;

mod check;
mod explain;
mod import;
mod render;
mod source;
mod yaml;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; the policy loads.
    Ok,
    /// A policy or document was refused.
    Refused,
    /// The command line was wrong, or a file could not be read.
    Usage,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(match e {
            Exit::Ok => 0,
            Exit::Refused => 1,
            Exit::Usage => 2,
        })
    }
}

/// Says what was wrong with the command line, and how it is used.
pub fn usage(usage: &str, problem: &str) -> Exit {
    eprintln!("api-guard: {problem}\n{usage}");
    Exit::Usage
}

const HELP: &str = "api-guard: the command line of the api-guard Proxy-Wasm filter

  api-guard check POLICY... [--host envoy|kong|apisix|auto]
      compile each policy as the module does on that host (a file may also be an Envoy
      bootstrap, an Istio WasmPlugin, a Kong declarative configuration or an APISIX route
      that embeds policies); exit 0 ok, 1 refused, 2 usage
  api-guard explain POLICY METHOD URL [-H 'name: value']... [--body FILE] [--jwks FILE] [--at UNIX]
      what the policy does with that request, step by step, and the answer
  api-guard import-openapi SPEC.(yaml|json) [--into POLICY]
      the OpenAPI document as JSON on stdout, or written into POLICY's openapi.document
  api-guard render envoy|kong|apisix|istio POLICY [--module PATH|--image REF]
      a host configuration with the policy embedded";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or(&[]);
    let exit = match args.first().map(String::as_str) {
        Some("check") => check::run(rest),
        Some("explain") => explain::run(rest),
        Some("import-openapi") => import::run(rest),
        Some("render") => render::run(rest),
        Some("-h" | "--help" | "help") => {
            println!("{HELP}");
            Exit::Ok
        }
        Some("-V" | "--version") => {
            println!("api-guard {}", env!("CARGO_PKG_VERSION"));
            Exit::Ok
        }
        Some(other) => usage(HELP, &format!("unknown command `{other}`")),
        None => usage(HELP, "name a command"),
    };
    exit.into()
}
