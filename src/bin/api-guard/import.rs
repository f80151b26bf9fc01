//! `api-guard import-openapi`: an OpenAPI document (YAML 1.2 or JSON) as the JSON a policy's
//! `openapi.document` holds, printed or written into a policy file atomically.

use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value};

use crate::{usage, yaml, Exit};

const USAGE: &str = "usage: api-guard import-openapi SPEC.(yaml|json) [--into POLICY]";

/// Runs `import-openapi` with its arguments.
pub fn run(args: &[String]) -> Exit {
    let mut spec = None;
    let mut into = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--into" => match it.next() {
                Some(p) => into = Some(p.clone()),
                None => return usage(USAGE, "--into takes a policy file"),
            },
            "-h" | "--help" => {
                println!("{USAGE}\n\nYAML is read as YAML 1.2: `no`, `on` and dates stay strings. Only JSON is printed on stdout; with --into the policy is replaced atomically (a temporary file, then a rename).");
                return Exit::Ok;
            }
            a if a.starts_with('-') && a != "-" => return usage(USAGE, &format!("unknown option `{a}`")),
            a if spec.is_none() => spec = Some(a.to_string()),
            a => return usage(USAGE, &format!("one document at a time (`{a}` is a second)")),
        }
    }
    let Some(spec) = spec else { return usage(USAGE, "name the OpenAPI document") };
    let text = match read(&spec) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("api-guard: cannot read {spec}: {e}");
            return Exit::Usage;
        }
    };
    let document = match document(&text) {
        Ok(d) => d,
        Err((line, message)) => {
            eprintln!("{spec}:{line}: error: {message}");
            return Exit::Refused;
        }
    };
    match into {
        None => {
            let mut out = pretty(&document);
            out.push('\n');
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()).is_err() {
                return Exit::Refused;
            }
            Exit::Ok
        }
        Some(policy) => write_into(&policy, document),
    }
}

fn read(path: &str) -> std::io::Result<String> {
    if path == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
}

/// The document as JSON. JSON text is read as JSON (its numbers and order exactly); anything
/// else as one YAML 1.2 document.
pub fn document(text: &str) -> Result<Value, (usize, String)> {
    let value = if text.trim_start().starts_with('{') {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => v,
            Err(e) => return Err((e.line(), format!("not valid JSON: {e}"))),
        }
    } else {
        let docs = yaml::load(text).map_err(|e| (e.line, format!("not valid YAML: {}", e.message)))?;
        match docs.as_slice() {
            [one] => one.to_json(),
            [] => return Err((1, "the file is empty".into())),
            [_, second, ..] => {
                return Err((
                    second.line,
                    "more than one YAML document; an OpenAPI description is one".into(),
                ))
            }
        }
    };
    match value.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.") => Ok(value),
        Some(v) => Err((
            1,
            format!("`openapi: {v}`: api-guard reads OpenAPI 3.0 and 3.1 (convert Swagger 2.0 first)"),
        )),
        None if value.get("swagger").is_some() => {
            Err((1, "a Swagger 2.0 document: api-guard reads OpenAPI 3.0 and 3.1 (convert it first)".into()))
        }
        None => Err((1, "not an OpenAPI document (no `openapi` field at the top)".into())),
    }
}

/// Two-space indented JSON, the form the project's policies are written in.
fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Sets `openapi.document` of the policy at `path` (created when missing), replacing the file
/// only once the new one is complete.
fn write_into(path: &str, document: Value) -> Exit {
    let mut policy = match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(p)) => p,
            Ok(_) => {
                eprintln!("{path}: error: a policy is a JSON object");
                return Exit::Refused;
            }
            Err(e) => {
                eprintln!("{path}:{}: error: not valid JSON: {e}", e.line());
                return Exit::Refused;
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => {
            eprintln!("api-guard: cannot read {path}: {e}");
            return Exit::Usage;
        }
    };
    let openapi = policy.entry("openapi").or_insert_with(|| Value::Object(Map::new()));
    match openapi {
        Value::Object(o) => {
            o.insert("document".into(), document);
        }
        _ => {
            eprintln!("{path}: error: `openapi` is not an object");
            return Exit::Refused;
        }
    }
    let mut text = pretty(&Value::Object(policy));
    text.push('\n');
    match replace(Path::new(path), text.as_bytes()) {
        Ok(()) => {
            eprintln!("api-guard: wrote openapi.document into {path}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("api-guard: cannot write {path}: {e} (the file is unchanged)");
            Exit::Refused
        }
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`: a reader (or
/// a crash) sees the old file or the new one, never part of one.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        // Keep the policy's permissions (it may be readable by the gateway only).
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&temp, meta.permissions())?;
        }
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
