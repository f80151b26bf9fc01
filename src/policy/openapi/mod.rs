//! Request validation from the API's own OpenAPI document.
//!
//! The document is compiled once, at load: servers' base paths joined to path templates make
//! the operation matcher (the same [`RouteTable`] as routes), references are resolved, every
//! parameter and request body schema is compiled, and object shapes are built for the
//! unknown-member and `readOnly` checks. A document that cannot be compiled is a config error
//! naming the JSON pointer of the part at fault.
//!
//! Per request, in order: the inventory (404 for an undocumented path, 405 with `Allow` for an
//! undocumented method), deprecation, parameters (path, query, header, cookie), then the
//! body's media type and presence; the body itself is validated when complete
//! ([`ApiSpec::check_body`]), after the streaming JSON limits have passed.

pub mod params;
pub mod quick;
pub mod read;
pub mod schema;
pub mod shape;

use std::collections::BTreeMap;

use serde_json::Value;

use super::body::BodyTarget;
use super::config::{AmbiguousTemplates, ConfigError, DeprecatedAction, OpenApiConfig, UnknownOperations};
use super::denial::{Denial, ProblemError, Reason};
use super::http::RequestHead;
use super::json::pointer_token;
use super::media::{self, MediaRange};
use super::method::{Method, MethodSet};
use super::multipart;
use super::route::{MatchRules, PathPattern, RouteMatcher, RouteTable, Specificity};
use params::{In, Kind, Style};
use schema::{Dialect, SchemaId, SchemaSet};
use shape::{resolve_ref, Shapes};

/// Default most entries in a denial's `errors`.
pub const DEFAULT_MAX_ERRORS: u32 = 10;
/// Default most parts of a `multipart/form-data` body.
pub const DEFAULT_MAX_PARTS: u32 = 100;

const METHODS: [(&str, Method); 8] = [
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("options", Method::OPTIONS),
    ("head", Method::HEAD),
    ("patch", Method::PATCH),
    ("trace", Method::TRACE),
];

#[derive(Debug)]
struct Param {
    name: String,
    /// Lower-cased, for header parameters.
    header: String,
    /// Where errors point (`/query/limit`).
    pointer: String,
    at: In,
    required: bool,
    kind: Kind,
    style: Style,
    explode: bool,
    schema: Option<SchemaId>,
}

impl Param {
    /// Whether a query pair called `name` belongs to this (query) parameter.
    fn documents_query_name(&self, name: &str) -> bool {
        if name == self.name {
            return true;
        }
        match (&self.kind, self.style) {
            (_, Style::DeepObject) => {
                name.strip_prefix(self.name.as_str()).is_some_and(|r| r.starts_with('['))
            }
            (Kind::Object(members, _), Style::Form) if self.explode => members.contains_key(name),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaKind {
    Json,
    Form,
    Multipart,
    Other,
}

#[derive(Debug)]
struct MediaSpec {
    range: MediaRange,
    /// The key's parameters (`charset=utf-8`), matched by name.
    params: media::Params,
    kind: MediaKind,
    schema: Option<SchemaId>,
    shape: Option<usize>,
    /// For form bodies: how each member's strings are converted.
    fields: BTreeMap<String, Kind>,
}

#[derive(Debug)]
struct RequestBodySpec {
    required: bool,
    media: Vec<MediaSpec>,
}

/// One documented operation.
#[derive(Debug)]
pub struct Operation {
    /// `operationId`, or `METHOD /path`.
    pub name: String,
    params: Vec<Param>,
    body: Option<RequestBodySpec>,
    deprecated: bool,
    /// Response headers announcing deprecation (empty unless deprecated and warned).
    pub response_headers: Vec<(String, String)>,
    /// Documented JSON response shapes by status (only with `response_allowlist`).
    responses: Vec<(StatusKey, Vec<usize>)>,
}

/// The key of an entry in an operation's `responses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusKey {
    /// `"200"`.
    Exact(u16),
    /// `"2XX"`: the hundreds digit.
    Range(u16),
    /// `"default"`.
    Default,
}

impl StatusKey {
    fn parse(key: &str) -> Option<StatusKey> {
        let b = key.as_bytes();
        match b {
            b"default" => Some(StatusKey::Default),
            [d @ b'1'..=b'5', b'X' | b'x', b'X' | b'x'] => Some(StatusKey::Range(u16::from(d - b'0'))),
            [b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'] => key.parse().ok().map(StatusKey::Exact),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct PathEntry {
    ops: Vec<(Method, usize)>,
}

/// A compiled OpenAPI document.
#[derive(Debug)]
pub struct ApiSpec {
    table: RouteTable,
    /// Table entry → path entry.
    entry_path: Vec<usize>,
    /// Table entry → its template's shape (entries of one shape differ only by method).
    entry_shape: Vec<String>,
    /// Table entry → `Allow` of its shape's group.
    entry_allow: Vec<String>,
    paths: Vec<PathEntry>,
    /// Operations, indexed by [`BodyTarget::operation`] and [`Found::operation`].
    pub operations: Vec<Operation>,
    schemas: SchemaSet,
    shapes: Shapes,
    unknown: UnknownOperations,
    deprecated: DeprecatedAction,
    reject_unknown_fields: bool,
    reject_unknown_query: bool,
    max_errors: usize,
    max_parts: u32,
    max_part_bytes: Option<u64>,
    /// Some operation documents a JSON response schema (decided once, asked per request).
    prunes: bool,
}

/// A request matched to an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'p> {
    /// The operation's index.
    pub operation: usize,
    /// Path template values, raw (still percent-encoded).
    pub params: Vec<(String, &'p str)>,
}

fn err(pointer: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(format!("openapi.document#{pointer}"), message)
}

/// Every `$ref` in the document must resolve inside it: a typo in a reference would otherwise
/// leave the schema behind it unknown, and an unknown response schema would let every member
/// through the allowlist. Values that are data, not description (`example`, `examples`'
/// `value`, `default`, `enum`, `const`, `x-` extensions), are not searched.
fn check_references(doc: &Value, v: &Value, at: &mut String) -> Result<(), ConfigError> {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                if !r.starts_with('#') {
                    return Err(err(
                        at,
                        format!("reference '{r}' points outside the document; bundle it first (external references resolved into the document)"),
                    ));
                }
                if resolve_ref(doc, r).is_none() {
                    return Err(err(
                        at,
                        format!(
                            "reference '{r}' does not resolve: nothing in the document is at that pointer"
                        ),
                    ));
                }
            }
            for (k, child) in map {
                if matches!(k.as_str(), "example" | "default" | "enum" | "const") || k.starts_with("x-") {
                    continue;
                }
                let len = at.len();
                at.push('/');
                at.push_str(&pointer_token(k));
                if !(k == "value" && at_is_example_value(at)) {
                    check_references(doc, child, at)?;
                }
                at.truncate(len);
            }
            Ok(())
        }
        Value::Array(list) => {
            for (i, child) in list.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                check_references(doc, child, at)?;
                at.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Whether `at` is `…/examples/<name>/value` (an Example Object's value, which is data).
fn at_is_example_value(at: &str) -> bool {
    let mut parts = at.rsplit('/');
    parts.next() == Some("value") && parts.next().is_some() && parts.next() == Some("examples")
}

/// Follows `$ref`s (inside the document) from the value at `pointer`, returning the target and
/// its pointer.
fn deref<'d>(doc: &'d Value, pointer: &str) -> Result<(&'d Value, String), ConfigError> {
    let mut at = pointer.to_string();
    for _ in 0..32 {
        let v = doc.pointer(&at).ok_or_else(|| err(&at, "does not exist"))?;
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let (_, target) = resolve_ref(doc, r)
                    .ok_or_else(|| err(&at, format!("$ref '{r}' does not resolve inside the document")))?;
                at = target;
            }
            None => return Ok((v, at)),
        }
    }
    Err(err(pointer, "$ref chain is too long or circular"))
}

/// The path part of a server URL, with variables replaced by their defaults.
fn server_base(server: &Value, at: &str) -> Result<String, ConfigError> {
    let url = server.get("url").and_then(Value::as_str).ok_or_else(|| err(at, "server needs a url"))?;
    let mut url = url.to_string();
    if let Some(Value::Object(vars)) = server.get("variables") {
        for (name, var) in vars {
            let default = var
                .get("default")
                .and_then(Value::as_str)
                .ok_or_else(|| err(&format!("{at}/variables/{}", pointer_token(name)), "needs a default"))?;
            url = url.replace(&format!("{{{name}}}"), default);
        }
    }
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| rest.get(i..).unwrap_or("")),
        None => url.as_str(),
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = path.trim_end_matches('/');
    if path.contains(['{', '}']) {
        return Err(err(at, "server url has a variable without a default"));
    }
    Ok(if path.is_empty() || path.starts_with('/') { path.to_string() } else { format!("/{path}") })
}

/// Parses an RFC 3339 date-time into Unix seconds.
fn rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let n = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't'))
    {
        return None;
    }
    let (y, mo, d, h, mi, se) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = frac.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            if rest.len() != 6 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from civil (H. Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// Formats Unix seconds as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = DAYS.get(usize::try_from(days.rem_euclid(7)).unwrap_or(0)).unwrap_or(&"Thu");
    let mon = MONTHS.get(usize::try_from(m - 1).unwrap_or(0)).unwrap_or(&"Jan");
    format!("{wd}, {d:02} {mon} {y:04} {:02}:{:02}:{:02} GMT", secs / 3600, secs % 3600 / 60, secs % 60)
}

impl ApiSpec {
    /// Compiles `doc`, the configuration's document (moved out of `cfg`, which gives the
    /// options), consuming it: the compiled form keeps nothing of the source tree.
    pub fn compile(cfg: &OpenApiConfig, mut doc: Value, rules: MatchRules) -> Result<ApiSpec, ConfigError> {
        let dialect = prepare(&mut doc)?;
        let mut schemas = SchemaSet::deferred(dialect);
        let mut shapes = Shapes::default();
        let bases = server_bases(&doc)?;
        let dates = deprecation_dates(cfg)?;
        let Compiled { operations, paths, path_pointers, mut entries } =
            compile_paths(cfg, &doc, &bases, dates, &mut schemas, &mut shapes)?;
        let groups = shape_groups(cfg, &entries, &paths, &path_pointers)?;
        shapes.seal();
        // Every schema named above is compiled from the document, which goes with the compiler.
        schemas.finish(doc).map_err(|(at, e)| err(&at, e))?;
        let prunes = operations.iter().any(|o| !o.responses.is_empty());
        // Stable sort: equally specific templates keep document order.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let entry_path = entries.iter().map(|e| e.1).collect();
        // Per table entry: its shape group's key and `Allow` (see `shape_groups`).
        let entry_shape: Vec<String> = entries.iter().map(|e| e.2.path.shape_key()).collect();
        let entry_allow: Vec<String> = entry_shape
            .iter()
            .map(|k| {
                let methods = groups.get(k).map(|g| g.1).unwrap_or_default();
                let with_head: MethodSet = if methods.contains(Some(Method::GET)) {
                    methods.union([Method::HEAD].into_iter().collect())
                } else {
                    methods
                };
                with_head.allow_header()
            })
            .collect();
        let table = RouteTable::with_rules(entries.into_iter().map(|e| e.2).collect(), rules);
        Ok(ApiSpec {
            table,
            entry_path,
            entry_shape,
            entry_allow,
            paths,
            operations,
            schemas,
            shapes,
            unknown: cfg.unknown_operations,
            deprecated: cfg.deprecated.action,
            reject_unknown_fields: cfg.reject_unknown_fields,
            reject_unknown_query: cfg.reject_unknown_query_parameters,
            max_errors: cfg.max_errors.unwrap_or(DEFAULT_MAX_ERRORS).max(1) as usize,
            max_parts: cfg.max_multipart_parts.unwrap_or(DEFAULT_MAX_PARTS),
            max_part_bytes: cfg.max_multipart_part_bytes,
            prunes,
        })
    }

    /// The inventory: the operation for `method` on a normalised `path`. `Ok(None)` when the
    /// document does not describe it and unknown operations are allowed through.
    pub fn find<'p>(&self, method: Option<Method>, path: &'p str) -> Result<Option<Found<'p>>, Denial> {
        let allow_unknown = self.unknown == UnknownOperations::Allow;
        let Some(m) = self.table.find(None, path) else {
            return if allow_unknown { Ok(None) } else { Err(Denial::new(Reason::UnknownOperation)) };
        };
        let m_index = m.index;
        let shape = self.entry_shape.get(m_index);
        let mut at = Some(m);
        // The matched template, then any of the same shape further on (other methods).
        while let Some(m) = at {
            let Some(entry) = self.entry_path.get(m.index).and_then(|i| self.paths.get(*i)) else {
                return Err(Denial::new(Reason::UnknownOperation));
            };
            let op = entry.ops.iter().find(|(em, _)| Some(*em) == method).or_else(|| {
                // HEAD is GET without the body.
                (method == Some(Method::HEAD))
                    .then(|| entry.ops.iter().find(|(em, _)| *em == Method::GET))
                    .flatten()
            });
            if let Some((_, operation)) = op {
                return Ok(Some(Found { operation: *operation, params: m.params }));
            }
            at = self
                .table
                .find_from(m.index + 1, None, path)
                .filter(|n| self.entry_shape.get(n.index) == shape);
        }
        if allow_unknown {
            return Ok(None);
        }
        let allow = shape.and_then(|_| self.entry_allow.get(m_index)).cloned();
        Err(Denial { allow: allow.map(String::into_boxed_str), ..Denial::new(Reason::MethodNotAllowed) })
    }

    /// The documented JSON response shapes of `operation` for `status`: the exact code's,
    /// else its range's (`2XX`), else `default`'s. `None` when none is documented.
    pub fn response_shape(&self, operation: usize, status: u16) -> Option<&[usize]> {
        let responses = &self.operations.get(operation)?.responses;
        let find = |k: StatusKey| responses.iter().find(|(x, _)| *x == k).map(|(_, r)| r.as_slice());
        find(StatusKey::Exact(status))
            .or_else(|| find(StatusKey::Range(status / 100)))
            .or_else(|| find(StatusKey::Default))
    }

    /// The compiled object shapes.
    pub fn shapes(&self) -> &Shapes {
        &self.shapes
    }

    /// Whether any operation prunes responses.
    pub fn prunes_responses(&self) -> bool {
        self.prunes
    }

    /// Removes what the shapes `roots` do not document from a response body (see
    /// [`Shapes::prune`]). Returns how many members were removed.
    pub fn prune_response(&self, roots: &[usize], body: &mut Value) -> usize {
        self.shapes.prune(roots, body)
    }

    /// Deprecation and parameters.
    pub fn check_request(
        &self,
        found: &Found<'_>,
        query: &str,
        head: &RequestHead<'_>,
    ) -> Result<(), Denial> {
        let Some(op) = self.operations.get(found.operation) else { return Ok(()) };
        if op.deprecated && self.deprecated == DeprecatedAction::Deny {
            return Err(Denial::new(Reason::DeprecatedOperation));
        }
        if op.params.is_empty() && (query.is_empty() || !self.reject_unknown_query) {
            return Ok(());
        }
        let query_pairs = if self.reject_unknown_query || op.params.iter().any(|p| p.at == In::Query) {
            params::form_pairs(query)
        } else {
            Vec::new()
        };
        let cookies = if op.params.iter().any(|p| p.at == In::Cookie) {
            head.header("cookie")
                .map(|c| params::cookie_pairs(&String::from_utf8_lossy(c)))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut errors = Vec::new();
        if self.reject_unknown_query {
            for (name, _) in &query_pairs {
                let documented = op.params.iter().any(|p| p.at == In::Query && p.documents_query_name(name));
                if !documented && errors.len() < self.max_errors {
                    errors.push(ProblemError {
                        pointer: format!("/query/{}", pointer_token(name)),
                        keyword: "undocumented".into(),
                        message: "is not a documented query parameter".into(),
                    });
                }
            }
        }
        for p in &op.params {
            // One value per occurrence in the path (a template may name a parameter twice),
            // else one value; `Err` when it was sent, but not in the documented style.
            let values: Vec<Result<Value, ()>> = match p.at {
                In::Path => found
                    .params
                    .iter()
                    .filter(|(n, _)| *n == p.name)
                    .map(|(_, raw)| params::path_value(&p.kind, p.style, p.explode, &p.name, raw).ok_or(()))
                    .collect(),
                In::Query => params::query_value(&p.kind, p.style, p.explode, &p.name, &query_pairs)
                    .into_iter()
                    .map(Ok)
                    .collect(),
                In::Header => {
                    // Repeated header lines are one comma-separated value (RFC 9110 §5.3).
                    let lines: Vec<String> = head
                        .headers
                        .iter()
                        .filter(|(n, _)| *n == p.header)
                        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                        .collect();
                    let joined = match p.kind {
                        Kind::Array(_) | Kind::Object(..) => {
                            Some(lines.join(",")).filter(|_| !lines.is_empty())
                        }
                        _ => lines.into_iter().next(),
                    };
                    joined.map(|raw| Ok(params::text_value(&p.kind, p.explode, &raw))).into_iter().collect()
                }
                In::Cookie => cookies
                    .iter()
                    .find(|(n, _)| *n == p.name)
                    .map(|(_, raw)| Ok(params::text_value(&p.kind, p.explode, raw)))
                    .into_iter()
                    .collect(),
            };
            if values.is_empty() {
                if p.required && errors.len() < self.max_errors {
                    errors.push(ProblemError {
                        pointer: p.pointer.clone(),
                        keyword: "required".into(),
                        message: "is required".into(),
                    });
                }
                continue;
            }
            for value in values {
                let Ok(value) = value else {
                    if errors.len() < self.max_errors {
                        errors.push(ProblemError {
                            pointer: p.pointer.clone(),
                            keyword: "style".into(),
                            message: "is not in the documented style".into(),
                        });
                    }
                    continue;
                };
                if let Some(index) = p.schema {
                    self.schemas.validate(index, &value, &p.pointer, self.max_errors, &mut errors);
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Denial::with_errors(Reason::InvalidRequest, errors))
        }
    }

    /// Checks the body's presence and media type against the operation; returns what to
    /// validate once the body is complete.
    pub fn body_target(
        &self,
        operation: usize,
        has_body: bool,
        content_type: Option<&[u8]>,
    ) -> Result<Option<BodyTarget>, Denial> {
        let Some(op) = self.operations.get(operation) else { return Ok(None) };
        let one = |keyword: &str, message: &str| {
            Denial::with_errors(
                Reason::InvalidRequest,
                vec![ProblemError {
                    pointer: "/body".into(),
                    keyword: keyword.into(),
                    message: message.into(),
                }],
            )
        };
        match (&op.body, has_body) {
            (None, false) => Ok(None),
            (None, true) => Err(one("requestBody", "this operation takes no request body")),
            (Some(b), false) if b.required => Err(one("required", "a request body is required")),
            (Some(_), false) => Ok(None),
            (Some(b), true) => {
                let essence = content_type.and_then(media::essence).unwrap_or_default();
                // The most specific documented range wins (`application/json` over `*/*`),
                // then the key whose parameters the request matches most.
                let pick = b
                    .media
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.range.includes(&essence))
                    .filter_map(|(i, m)| {
                        let fit = media::params_fit(&m.params, content_type.unwrap_or_default())?;
                        Some((i, m, fit))
                    })
                    .min_by_key(|(_, m, fit)| {
                        let rank = match m.range {
                            MediaRange::Exact(_) => 0,
                            MediaRange::Suffix(..) => 1,
                            MediaRange::Type(_) => 2,
                            MediaRange::Any => 3,
                        };
                        (rank, std::cmp::Reverse(*fit))
                    })
                    .map(|(i, m, _)| (i, m));
                match pick {
                    Some((_, m)) if m.kind == MediaKind::Other && m.schema.is_none() => Ok(None),
                    Some((i, _)) => Ok(Some(BodyTarget { operation, media: i })),
                    None => Err(Denial::new(Reason::UnsupportedMediaType)),
                }
            }
        }
    }

    /// The media type a body was matched to.
    fn media(&self, target: BodyTarget) -> Option<&MediaSpec> {
        self.operations
            .get(target.operation)
            .and_then(|o| o.body.as_ref())
            .and_then(|b| b.media.get(target.media))
    }

    /// Validates a complete body: in one pass over its bytes when that can say it is valid,
    /// else as a tree ([`ApiSpec::check_body_tree`]), which gives the errors.
    pub fn check_body(&self, target: BodyTarget, bytes: &[u8]) -> Result<(), Denial> {
        if self.check_body_quick(target, bytes) {
            return Ok(());
        }
        self.check_body_tree(target, bytes)
    }

    /// Whether the one-pass check alone finds a JSON body valid (`false` is no verdict).
    pub fn check_body_quick(&self, target: BodyTarget, bytes: &[u8]) -> bool {
        self.media(target).is_some_and(|m| m.kind == MediaKind::Json && self.quick_body(m).valid(bytes))
    }

    /// The one-pass check of a JSON body of media `m` (see [`quick`]).
    fn quick_body<'s>(&'s self, m: &MediaSpec) -> quick::Quick<'s> {
        let shapes = m
            .shape
            .filter(|s| self.shapes.worth_walking(*s, self.reject_unknown_fields))
            .map(|s| (&self.shapes, s, self.reject_unknown_fields));
        quick::Quick::new(&self.schemas, m.schema, shapes)
    }

    /// Validates a complete body as a tree, with every error found: the verdict whenever the
    /// one-pass check is not sure.
    pub fn check_body_tree(&self, target: BodyTarget, bytes: &[u8]) -> Result<(), Denial> {
        let Some(m) = self.media(target) else {
            return Ok(());
        };
        let mut errors = Vec::new();
        let value = match m.kind {
            MediaKind::Json => match serde_json::from_slice::<Value>(bytes) {
                Ok(v) => Some(v),
                Err(_) => return Err(Denial::new(Reason::InvalidJson)),
            },
            MediaKind::Form => {
                let text = String::from_utf8_lossy(bytes);
                Some(form_value(&params::form_pairs(&text), &m.fields))
            }
            MediaKind::Multipart => {
                self.check_multipart(bytes, &mut errors);
                None
            }
            MediaKind::Other => None,
        };
        if let Some(value) = value {
            if let Some(index) = m.schema {
                self.schemas.validate(index, &value, "/body", self.max_errors, &mut errors);
            }
            if let Some(shape) = m.shape.filter(|s| self.shapes.worth_walking(*s, self.reject_unknown_fields))
            {
                self.shapes.check(
                    shape,
                    &value,
                    "/body",
                    self.reject_unknown_fields,
                    self.max_errors,
                    &mut errors,
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Denial::with_errors(Reason::InvalidRequest, errors))
        }
    }

    /// Counts the parts of a multipart body and measures each.
    fn check_multipart(&self, bytes: &[u8], errors: &mut Vec<ProblemError>) {
        let mut problem = |keyword: &str, message: String| {
            errors.push(ProblemError { pointer: "/body".into(), keyword: keyword.into(), message });
        };
        for (n, part) in multipart::parts(bytes).enumerate() {
            let part = match part {
                Ok(p) => p,
                Err(e) => return problem("multipart", e.message().into()),
            };
            if n >= self.max_parts as usize {
                return problem("maxParts", format!("must have at most {} parts", self.max_parts));
            }
            if self.max_part_bytes.is_some_and(|max| part.raw.len() as u64 > max) {
                return problem("maxPartBytes", format!("part {} is too large", n + 1));
            }
        }
    }
}

/// A form body as the object its schema describes.
fn form_value(pairs: &[(String, String)], fields: &BTreeMap<String, Kind>) -> Value {
    let mut out = serde_json::Map::new();
    let mut names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
    names.dedup();
    for name in names {
        if out.contains_key(name) {
            continue;
        }
        let values: Vec<String> = pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect();
        let kind = fields.get(name).cloned().unwrap_or(Kind::String);
        let v = match (&kind, values.len()) {
            (Kind::Array(_), _) => kind.coerce_all(&values, true),
            (_, 1) => kind.coerce_all(&values, false),
            // A scalar field sent twice: show the schema an array, which its `type` refuses.
            _ => Some(Value::Array(values.into_iter().map(Value::String).collect())),
        };
        if let Some(v) = v {
            out.insert(name.to_string(), v);
        }
    }
    Value::Object(out)
}

/// The document's dialect by its `openapi` version, with the tree made ready for the compile:
/// 3.0 schemas rewritten in 3.1 terms, every reference checked, and the request view of
/// `required` (see `schema::request_view`; nothing read from the document afterwards depends
/// on those lists, so the one tree serves both, and moves into the validator once everything
/// else is read). Like each step of [`ApiSpec::compile`] below, a function of its own: V8
/// compiles several small functions in far less time than one large one.
#[inline(never)]
fn prepare(doc: &mut Value) -> Result<Dialect, ConfigError> {
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    let dialect = if version.starts_with("3.0.") {
        Dialect::Oas30
    } else if version.starts_with("3.1.") {
        Dialect::Oas31
    } else {
        return Err(err("/openapi", "must be an OpenAPI version 3.0.x or 3.1.x"));
    };
    if dialect == Dialect::Oas30 {
        schema::normalize_30(doc);
    }
    check_references(doc, doc, &mut String::new())?;
    schema::request_view(doc);
    Ok(dialect)
}

/// The path prefixes of the document's `servers` (one empty prefix when it has none).
#[inline(never)]
fn server_bases(doc: &Value) -> Result<Vec<String>, ConfigError> {
    let mut bases = Vec::new();
    match doc.get("servers") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, s) in list.iter().enumerate() {
                let b = server_base(s, &format!("/servers/{i}"))?;
                if !bases.contains(&b) {
                    bases.push(b);
                }
            }
        }
        _ => bases.push(String::new()),
    }
    Ok(bases)
}

/// `openapi.deprecated.date` and `sunset`, as Unix times.
#[inline(never)]
fn deprecation_dates(cfg: &OpenApiConfig) -> Result<(Option<i64>, Option<i64>), ConfigError> {
    let date = |value: &Option<String>, field: &str| {
        value
            .as_deref()
            .map(|d| rfc3339(d).ok_or_else(|| ConfigError::new(field, "must be an RFC 3339 date-time")))
            .transpose()
    };
    Ok((
        date(&cfg.deprecated.date, "openapi.deprecated.date")?,
        date(&cfg.deprecated.sunset, "openapi.deprecated.sunset")?,
    ))
}

/// What the path items compile to, before the route table is built.
struct Compiled {
    operations: Vec<Operation>,
    paths: Vec<PathEntry>,
    /// Per entry of `paths`: the path item's pointer, for load errors.
    path_pointers: Vec<String>,
    /// (specificity, index into `paths`, matcher), per server base and path item.
    entries: Vec<(Specificity, usize, RouteMatcher)>,
}

/// Every operation of every path item, and a table entry per server base and path item.
#[inline(never)]
fn compile_paths(
    cfg: &OpenApiConfig,
    doc: &Value,
    bases: &[String],
    (deprecated_date, sunset): (Option<i64>, Option<i64>),
    schemas: &mut SchemaSet,
    shapes: &mut Shapes,
) -> Result<Compiled, ConfigError> {
    let mut out = Compiled {
        operations: Vec::new(),
        paths: Vec::new(),
        path_pointers: Vec::new(),
        entries: Vec::new(),
    };
    let Some(Value::Object(path_items)) = doc.get("paths") else {
        return Err(err("/paths", "must be an object of path items"));
    };
    for (template, _) in path_items {
        let item_at = format!("/paths/{}", pointer_token(template));
        let (item, item_ptr) = deref(doc, &item_at)?;
        let shared = item.get("parameters").cloned().unwrap_or(Value::Array(Vec::new()));
        let mut ops = Vec::new();
        for (key, method) in METHODS {
            let Some(op) = item.get(key) else { continue };
            let op_at = format!("{item_ptr}/{key}");
            let at = OperationAt {
                op,
                method,
                template,
                item_at: &item_at,
                item_ptr: &item_ptr,
                op_at: &op_at,
                shared: &shared,
            };
            let operation = compile_operation(cfg, doc, &at, deprecated_date, sunset, schemas, shapes)?;
            ops.push((method, out.operations.len()));
            out.operations.push(operation);
        }
        if ops.is_empty() {
            continue;
        }
        let path_index = out.paths.len();
        out.paths.push(PathEntry { ops });
        out.path_pointers.push(item_at.clone());
        for base in bases {
            let full = format!("{base}{template}");
            let pattern = PathPattern::exact_template(&full).map_err(|e| err(&item_at, e.to_string()))?;
            out.entries.push((
                pattern.specificity(),
                path_index,
                RouteMatcher { path: pattern, methods: None },
            ));
        }
    }
    Ok(out)
}

/// The table entries grouped by their template's shape, each group with the methods its
/// templates define.
///
/// OpenAPI: "Templated paths with the same hierarchy but different templated names MUST NOT
/// exist as they are identical" (`/pets/{id}` and `/pets/{name}`). Real documents write them
/// anyway, for different methods (`GET /a/{id}`, `DELETE /a/{key}`): those are told apart by
/// the method, so they load and share one `Allow`. Two that define the same method could not
/// be told apart by any request: refused, naming both.
#[inline(never)]
fn shape_groups(
    cfg: &OpenApiConfig,
    entries: &[(Specificity, usize, RouteMatcher)],
    paths: &[PathEntry],
    path_pointers: &[String],
) -> Result<std::collections::HashMap<String, (usize, MethodSet)>, ConfigError> {
    let mut groups: std::collections::HashMap<String, (usize, MethodSet)> = std::collections::HashMap::new();
    for e in entries {
        let methods: MethodSet =
            paths.get(e.1).map(|p| p.ops.iter().map(|(m, _)| *m).collect()).unwrap_or_default();
        let key = e.2.path.shape_key();
        match groups.get_mut(&key) {
            None => {
                groups.insert(key, (e.1, methods));
            }
            Some((first, _)) if *first == e.1 => {}
            Some((first, seen)) => {
                let shared =
                    Method::ALL.into_iter().find(|m| seen.contains(Some(*m)) && methods.contains(Some(*m)));
                if let (Some(m), AmbiguousTemplates::Refuse) = (shared, cfg.ambiguous_templates) {
                    let first = path_pointers.get(*first).cloned().unwrap_or_default();
                    return Err(err(
                        path_pointers.get(e.1).map_or("", String::as_str),
                        format!(
                            "is the same template as {first} (only the parameter names differ) and both define {}: a request could not say which one it meant (OpenAPI forbids such templates)",
                            m.as_str()
                        ),
                    ));
                }
                *seen = seen.union(methods);
            }
        }
    }
    Ok(groups)
}

/// An operation of a path item and where it sits in the document (the pointers are for its
/// load errors).
struct OperationAt<'a> {
    op: &'a Value,
    method: Method,
    template: &'a str,
    item_at: &'a str,
    item_ptr: &'a str,
    op_at: &'a str,
    /// The path item's own `parameters` (an array, empty when it has none).
    shared: &'a Value,
}

/// One operation of a path item: its parameters (the item's shared ones after its own), body,
/// deprecation headers and documented responses. A function of its own so that the
/// document's compile stays several small functions for V8 to compile, not one large one.
#[inline(never)]
fn compile_operation(
    cfg: &OpenApiConfig,
    doc: &Value,
    at: &OperationAt<'_>,
    deprecated_date: Option<i64>,
    sunset: Option<i64>,
    schemas: &mut SchemaSet,
    shapes: &mut Shapes,
) -> Result<Operation, ConfigError> {
    let OperationAt { op, method, template, item_at, item_ptr, op_at, shared } = *at;
    let name = op
        .get("operationId")
        .and_then(Value::as_str)
        .map_or_else(|| format!("{} {template}", method.as_str()), str::to_string);
    let mut list: Vec<Param> = Vec::new();
    // Operation parameters override path-item ones with the same name and place.
    let op_params = op.get("parameters").map_or(0, |p| p.as_array().map_or(0, Vec::len));
    let shared_len = shared.as_array().map_or(0, Vec::len);
    let sources = (0..op_params)
        .map(|i| format!("{op_at}/parameters/{i}"))
        .chain((0..shared_len).map(|i| format!("{item_ptr}/parameters/{i}")));
    for p_at in sources {
        let Some(p) = compile_param(doc, &p_at, schemas)? else { continue };
        if !list.iter().any(|q| q.at == p.at && q.name == p.name) {
            list.push(p);
        }
    }
    let body = match op.get("requestBody") {
        Some(_) => Some(compile_body(doc, &format!("{op_at}/requestBody"), schemas, shapes)?),
        None => None,
    };
    let deprecated = op.get("deprecated") == Some(&Value::Bool(true));
    let mut response_headers = Vec::new();
    if deprecated && cfg.deprecated.action == DeprecatedAction::Warn {
        let own = |k: &str| -> Result<Option<i64>, ConfigError> {
            match op.get(k).and_then(Value::as_str) {
                Some(s) => rfc3339(s)
                    .map(Some)
                    .ok_or_else(|| err(&format!("{op_at}/{k}"), "must be an RFC 3339 date-time")),
                None => Ok(None),
            }
        };
        let at = own("x-deprecated-at")?.or(deprecated_date).ok_or_else(|| {
            err(op_at, "is deprecated: set x-deprecated-at here or openapi.deprecated.date")
        })?;
        response_headers.push(("deprecation".to_string(), format!("@{at}")));
        if let Some(s) = own("x-sunset")?.or(sunset) {
            response_headers.push(("sunset".to_string(), http_date(s)));
        }
    }
    // Path parameters must all be declared (OpenAPI requires it): a template value
    // nobody checks is a hole, so a document that leaves one out is refused.
    let in_template = PathPattern::exact_template(template).map_err(|e| err(item_at, e.to_string()))?;
    for n in in_template.params() {
        if !list.iter().any(|p| p.at == In::Path && p.name == n) {
            return Err(err(
                op_at,
                format!(
                    "path parameter '{n}' of '{template}' is not declared in `parameters` \
                         (OpenAPI requires each one; add {{\"name\": \"{n}\", \"in\": \"path\", \
                         \"required\": true, \"schema\": {{\"type\": \"string\"}}}})"
                ),
            ));
        }
    }
    let responses = if cfg.response_allowlist { compile_responses(doc, op_at, shapes)? } else { Vec::new() };
    Ok(Operation { name, params: list, body, deprecated, response_headers, responses })
}

/// Compiles the parameter at `at`; `None` for one OpenAPI says to ignore.
#[inline(never)]
fn compile_param(doc: &Value, at: &str, schemas: &mut SchemaSet) -> Result<Option<Param>, ConfigError> {
    let (p, ptr) = deref(doc, at)?;
    let name = p.get("name").and_then(Value::as_str).ok_or_else(|| err(&ptr, "parameter needs a name"))?;
    let place = p
        .get("in")
        .and_then(Value::as_str)
        .and_then(In::parse)
        .ok_or_else(|| err(&ptr, "parameter needs `in`: path, query, header or cookie"))?;
    // A header parameter named Accept, Content-Type or Authorization "SHALL be ignored"
    // (OpenAPI: those are described elsewhere).
    if place == In::Header
        && ["accept", "content-type", "authorization"].contains(&name.to_ascii_lowercase().as_str())
    {
        return Ok(None);
    }
    let required = place == In::Path || p.get("required") == Some(&Value::Bool(true));
    let style = Style::parse(p.get("style").and_then(Value::as_str), place).map_err(|e| err(&ptr, e))?;
    let explode = p.get("explode").and_then(Value::as_bool).unwrap_or(style == Style::Form);
    // `deepObject` has one serialisation, whatever `explode` says (documents often leave it
    // at its default, false, which the specification's table has no entry for).
    // A parameter is described by `schema`, or by `content` with exactly one media type
    // (whose `schema` then applies: JSON text for a JSON media type, else the text itself).
    let (schema_at, content_json) = match (p.get("schema"), p.get("content")) {
        (Some(_), None) => (Some(format!("{ptr}/schema")), false),
        (None, Some(Value::Object(content))) if content.len() == 1 => {
            let (media_key, m) = content.iter().next().ok_or_else(|| err(&ptr, "`content` is empty"))?;
            let m_at = format!("{ptr}/content/{}", pointer_token(media_key));
            let json =
                match MediaRange::parse_with_params(media_key).map_err(|e| err(&m_at, e.to_string()))?.0 {
                    MediaRange::Exact(e) => media::is_json(&e),
                    MediaRange::Suffix(_, s) => s == "json",
                    _ => false,
                };
            (m.get("schema").map(|_| format!("{m_at}/schema")), json)
        }
        (None, Some(_)) => {
            return Err(err(&ptr, "`content` of a parameter must hold exactly one media type"))
        }
        (Some(_), Some(_)) => return Err(err(&ptr, "a parameter has `schema` or `content`, not both")),
        (None, None) => (None, false),
    };
    let (kind, schema) = match schema_at {
        Some(s_at) => {
            let (resolved, _) = deref(doc, &s_at)?;
            let kind =
                if content_json { Kind::Json } else { kind_of(doc, resolved).map_err(|e| err(&s_at, e))? };
            (kind, Some(schemas.compile(&s_at).map_err(|e| err(&s_at, e))?))
        }
        None => (Kind::String, None),
    };
    Ok(Some(Param {
        name: name.to_string(),
        header: name.to_ascii_lowercase(),
        pointer: format!("/{}/{}", place.as_str(), pointer_token(name)),
        at: place,
        required,
        kind,
        style,
        explode,
        schema,
    }))
}

/// The kind a (resolved) schema converts strings to, following `items` and `properties` references.
fn kind_of(doc: &Value, schema: &Value) -> Result<Kind, String> {
    Kind::of(schema, &|sub| match sub.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve_ref(doc, r).map(|(v, _)| v.clone()),
        None => Some(sub.clone()),
    })
}

/// The JSON response shapes of the operation at `op_at`, by status key. A response without a
/// JSON schema is left out: its bodies are not pruned.
#[inline(never)]
fn compile_responses(
    doc: &Value,
    op_at: &str,
    shapes: &mut Shapes,
) -> Result<Vec<(StatusKey, Vec<usize>)>, ConfigError> {
    let Some(Value::Object(responses)) = doc.pointer(&format!("{op_at}/responses")) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for code in responses.keys() {
        let r_at = format!("{op_at}/responses/{}", pointer_token(code));
        let key = StatusKey::parse(code)
            .ok_or_else(|| err(&r_at, "must be a status code, a range such as 2XX, or default"))?;
        let (r, ptr) = deref(doc, &r_at)?;
        let mut roots = Vec::new();
        if let Some(Value::Object(content)) = r.get("content") {
            for (range, m) in content {
                let m_at = format!("{ptr}/content/{}", pointer_token(range));
                let json =
                    match MediaRange::parse_with_params(range).map_err(|e| err(&m_at, e.to_string()))?.0 {
                        MediaRange::Exact(e) => media::is_json(&e),
                        MediaRange::Suffix(_, s) => s == "json",
                        _ => false,
                    };
                if json && m.get("schema").is_some() {
                    roots.push(shapes.node(doc, &format!("{m_at}/schema")));
                }
            }
        }
        if !roots.is_empty() {
            out.push((key, roots));
        }
    }
    Ok(out)
}

#[inline(never)]
fn compile_body(
    doc: &Value,
    at: &str,
    schemas: &mut SchemaSet,
    shapes: &mut Shapes,
) -> Result<RequestBodySpec, ConfigError> {
    let (b, ptr) = deref(doc, at)?;
    let required = b.get("required") == Some(&Value::Bool(true));
    let Some(Value::Object(content)) = b.get("content") else {
        return Err(err(&ptr, "requestBody needs `content`"));
    };
    let mut media = Vec::new();
    for (range, m) in content {
        let m_at = format!("{ptr}/content/{}", pointer_token(range));
        let (parsed, params) = MediaRange::parse_with_params(range).map_err(|e| err(&m_at, e.to_string()))?;
        let kind = match &parsed {
            MediaRange::Exact(e) if media::is_json(e) => MediaKind::Json,
            MediaRange::Suffix(_, s) if s == "json" => MediaKind::Json,
            MediaRange::Exact(e) if e == "application/x-www-form-urlencoded" => MediaKind::Form,
            MediaRange::Exact(e) if e == "multipart/form-data" => MediaKind::Multipart,
            _ => MediaKind::Other,
        };
        let (schema, shape, fields) = match m.get("schema") {
            Some(_) if matches!(kind, MediaKind::Json | MediaKind::Form) => {
                let s_at = format!("{m_at}/schema");
                let index = schemas.compile(&s_at).map_err(|e| err(&s_at, e))?;
                let shape = shapes.node(doc, &s_at);
                let mut fields = BTreeMap::new();
                if kind == MediaKind::Form {
                    let (resolved, at) = deref(doc, &s_at)?;
                    if let Some(Value::Object(props)) = resolved.get("properties") {
                        for name in props.keys() {
                            let (ps, _) = deref(doc, &format!("{at}/properties/{}", pointer_token(name)))?;
                            // A nested object in a form field stays a string, which its schema refuses.
                            fields.insert(name.clone(), kind_of(doc, ps).unwrap_or(Kind::String));
                        }
                    }
                }
                (Some(index), Some(shape), fields)
            }
            _ => (None, None, BTreeMap::new()),
        };
        media.push(MediaSpec { range: parsed, params, kind, schema, shape, fields });
    }
    Ok(RequestBodySpec { required, media })
}

#[cfg(test)]
mod tests;
