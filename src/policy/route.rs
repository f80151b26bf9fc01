//! The route matcher: which configured route a request belongs to.
//!
//! Every per-route rule (limits now; JWT requirements, schemas and CORS later) hangs off a route,
//! so this is the one place that decides "which rules apply". Patterns are compiled at load time;
//! matching a request walks the normalised path's segments once per candidate route, in
//! configuration order, and the first match wins.

use std::fmt;

use super::method::{Method, MethodSet};

/// Why a path pattern in the config is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// The pattern does not start with `/`.
    NotAbsolute,
    /// A segment is `.`, `..` or empty inside the pattern, which no normalised path contains.
    NonNormalSegment,
    /// A `{` without its `}` (or the other way round), or braces inside a parameter name.
    BadBrace,
    /// A parameter name that is empty.
    BadParamName(String),
    /// The same parameter name twice.
    DuplicateParam(String),
    /// Two parameters in one segment with no literal text between them (`{a}{b}`): no
    /// request could say where one ends.
    AdjacentParams(String),
    /// More parameters in one segment than [`MAX_SEGMENT_PARAMS`].
    TooManyParams,
}

/// Most parameters one path segment may hold (`{name}.{ext}` holds two). Matching a segment
/// with parameters backtracks over where each one ends, so this bounds its cost.
pub const MAX_SEGMENT_PARAMS: usize = 4;

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::NotAbsolute => f.write_str("must start with '/'"),
            PatternError::NonNormalSegment => f.write_str(
                "must not contain empty, '.' or '..' segments (paths are normalised before matching)",
            ),
            PatternError::BadBrace => f.write_str("a parameter must be written '{name}', with nothing but its name between the braces"),
            PatternError::BadParamName(n) => write!(f, "parameter name '{n}' must not be empty"),
            PatternError::DuplicateParam(n) => write!(f, "parameter '{n}' appears twice"),
            PatternError::AdjacentParams(seg) => write!(
                f,
                "segment '{seg}' has two parameters with nothing between them; no request could say where one ends"
            ),
            PatternError::TooManyParams => {
                write!(f, "a segment may hold at most {MAX_SEGMENT_PARAMS} parameters")
            }
        }
    }
}

/// A piece of a segment that mixes literal text and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text the request's segment must contain here.
    Literal(String),
    /// Any non-empty text, bound to this name.
    Param(String),
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the request's segment.
    Literal(String),
    /// Matches any one non-empty segment and binds it to this name.
    Param(String),
    /// Literal text and parameters within one segment, as OpenAPI allows: `{id}.json`,
    /// `{name}:cancel`, `v{major}.{minor}`. Parameters alternate with literals and match
    /// non-empty text; where a split is ambiguous (`{name}.{ext}` against `a.b.c`), earlier
    /// parameters take as little as they can.
    Mixed(Vec<Part>),
}

/// A template's sort key (see [`PathPattern::specificity`]): per segment, its kind and, for a
/// mixed one, how little literal text it holds.
pub type Specificity = Vec<(u8, usize)>;

/// How a template treats a trailing slash in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailingSlash {
    /// `/users` and `/users/` both match (route rules: a rule must not be escaped by a slash).
    Either,
    /// Only the form the template has (OpenAPI paths: `/users/` is another path).
    Exact(bool),
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// A path template such as `/users/{id}/orders`: the whole path must match, `{name}` matches
    /// exactly one non-empty segment (or non-empty text within one).
    Template {
        /// The segments, in order.
        segments: Vec<Segment>,
        /// Whether a trailing slash matters.
        slash: TrailingSlash,
    },
    /// A segment-aware prefix: `/api` matches `/api` and `/api/...`, never `/apix`.
    Prefix(Vec<String>),
}

fn segments(pattern: &str) -> Result<Vec<&str>, PatternError> {
    let rest = pattern.strip_prefix('/').ok_or(PatternError::NotAbsolute)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
        return Err(PatternError::NonNormalSegment);
    }
    Ok(segs)
}

/// Splits a template segment into literal text and `{name}` parameters.
/// `repeats`: whether a name may appear again (OpenAPI: each occurrence is checked).
fn parts(seg: &str, names: &mut Vec<String>, repeats: bool) -> Result<Vec<Part>, PatternError> {
    let mut out = Vec::new();
    let mut rest = seg;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                out.push(Part::Literal(normal_literal(rest)));
                rest = "";
            }
            Some(i) if rest.as_bytes().get(i) == Some(&b'}') => return Err(PatternError::BadBrace),
            Some(i) => {
                if i > 0 {
                    out.push(Part::Literal(normal_literal(rest.get(..i).unwrap_or(""))));
                }
                let after = rest.get(i + 1..).unwrap_or("");
                let close = after.find('}').ok_or(PatternError::BadBrace)?;
                let name = after.get(..close).unwrap_or("");
                if name.contains('{') {
                    return Err(PatternError::BadBrace);
                }
                if name.is_empty() {
                    return Err(PatternError::BadParamName(String::new()));
                }
                if !repeats && names.iter().any(|n| n == name) {
                    return Err(PatternError::DuplicateParam(name.to_string()));
                }
                if matches!(out.last(), Some(Part::Param(_))) {
                    return Err(PatternError::AdjacentParams(seg.to_string()));
                }
                names.push(name.to_string());
                out.push(Part::Param(name.to_string()));
                rest = after.get(close + 1..).unwrap_or("");
            }
        }
    }
    if out.iter().filter(|p| matches!(p, Part::Param(_))).count() > MAX_SEGMENT_PARAMS {
        return Err(PatternError::TooManyParams);
    }
    Ok(out)
}

/// Matches `got` against `parts`, pushing bound parameters; on failure `params` is unchanged.
///
/// A parameter is "one or more characters", so a mixed segment is a glob pattern (`?*` per
/// parameter) and is matched the way globs are: in one pass that, on a mismatch, grows only
/// the most recent parameter by one character and retries from there. That finds a match
/// whenever one exists, with earlier parameters as short as they can be, in at most
/// (segment length × template length) steps: a crafted segment (`/a.a.a.…` against
/// `/{x}.{y}.{z}.json`) costs no more than its length, where trying every split would cost
/// its cube.
fn match_parts<'p>(parts: &[Part], got: &'p str, fold: bool, params: &mut Vec<(String, &'p str)>) -> bool {
    // Per parameter: where its text starts and ends once matched.
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(parts.len());
    let char_len = |i: usize| got.get(i..).and_then(|r| r.chars().next()).map_or(1, char::len_utf8);
    // (part index, position in `got`): where the next part must match.
    let (mut part, mut pos) = (0usize, 0usize);
    // The most recent parameter: its part index and span slot, to grow it on a mismatch.
    let mut last: Option<(usize, usize)> = None;
    loop {
        match parts.get(part) {
            None if pos == got.len() => break,
            Some(Part::Literal(lit))
                if got.get(pos..pos + lit.len()).is_some_and(|r| same_literal(lit, r, fold)) =>
            {
                pos += lit.len();
                part += 1;
                continue;
            }
            Some(Part::Param(_)) if pos < got.len() => {
                // At least one character, more only if a later mismatch asks for it.
                let end = pos + char_len(pos);
                spans.truncate(
                    parts.get(..part).map_or(0, |p| p.iter().filter(|x| matches!(x, Part::Param(_))).count()),
                );
                spans.push((pos, end));
                last = Some((part, spans.len() - 1));
                pos = end;
                part += 1;
                continue;
            }
            _ => {}
        }
        // Mismatch: grow the most recent parameter by one character, if anything is left.
        let Some((p_index, slot)) = last else { return false };
        let Some(&(start, end)) = spans.get(slot) else { return false };
        if end >= got.len() {
            return false;
        }
        let grown = end + char_len(end);
        spans.truncate(slot);
        spans.push((start, grown));
        part = p_index + 1;
        pos = grown;
    }
    let names = parts.iter().filter_map(|p| match p {
        Part::Param(n) => Some(n),
        Part::Literal(_) => None,
    });
    let start = params.len();
    for (name, (a, b)) in names.zip(spans.iter()) {
        match got.get(*a..*b) {
            Some(v) => params.push((name.clone(), v)),
            None => {
                params.truncate(start);
                return false;
            }
        }
    }
    true
}

impl PathPattern {
    /// Compiles a route template such as `/users/{id}`; a trailing slash in the request is
    /// ignored, so a rule cannot be escaped by adding one.
    pub fn template(pattern: &str) -> Result<PathPattern, PatternError> {
        let segments = Self::template_segments(pattern, false)?;
        Ok(PathPattern::Template { segments, slash: TrailingSlash::Either })
    }

    /// Compiles an OpenAPI path template: parameters may sit inside a segment
    /// (`/files/{id}.json`), a trailing slash is part of the path (`/users/` is not `/users`),
    /// empty segments are merged as they are in requests (`/a//b` is `/a/b`), and a parameter
    /// may appear twice (each value is then checked).
    pub fn exact_template(pattern: &str) -> Result<PathPattern, PatternError> {
        let merged: String = {
            let mut out = String::with_capacity(pattern.len());
            for c in pattern.chars() {
                if !(c == '/' && out.ends_with('/')) {
                    out.push(c);
                }
            }
            out
        };
        let segments = Self::template_segments(&merged, true)?;
        let slash = TrailingSlash::Exact(merged.len() > 1 && merged.ends_with('/'));
        Ok(PathPattern::Template { segments, slash })
    }

    fn template_segments(pattern: &str, repeats: bool) -> Result<Vec<Segment>, PatternError> {
        let mut out = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for seg in segments(pattern)? {
            let mut ps = parts(seg, &mut names, repeats)?;
            out.push(match ps.as_slice() {
                [Part::Param(_)] => match ps.pop() {
                    Some(Part::Param(n)) => Segment::Param(n),
                    _ => return Err(PatternError::BadBrace),
                },
                [Part::Literal(_)] => match ps.pop() {
                    Some(Part::Literal(l)) => Segment::Literal(l),
                    _ => return Err(PatternError::BadBrace),
                },
                _ => Segment::Mixed(ps),
            });
        }
        Ok(out)
    }

    /// Compiles a prefix such as `/api/v1`.
    pub fn prefix(pattern: &str) -> Result<PathPattern, PatternError> {
        let segs = segments(pattern)?;
        if segs.iter().any(|s| s.contains(['{', '}'])) {
            return Err(PatternError::BadBrace);
        }
        Ok(PathPattern::Prefix(segs.into_iter().map(normal_literal).collect()))
    }

    /// The template's parameter names, in order (none for a prefix).
    pub fn params(&self) -> Vec<&str> {
        let PathPattern::Template { segments, .. } = self else { return Vec::new() };
        let mut out = Vec::new();
        for seg in segments {
            match seg {
                Segment::Literal(_) => {}
                Segment::Param(n) => out.push(n.as_str()),
                Segment::Mixed(parts) => out.extend(parts.iter().filter_map(|p| match p {
                    Part::Param(n) => Some(n.as_str()),
                    Part::Literal(_) => None,
                })),
            }
        }
        out
    }

    /// A sort key: at the first segment where two templates differ, a literal segment sorts
    /// before one mixing text and parameters (more literal text first), which sorts before a
    /// bare parameter (`/pets/mine`, then `/pets/{id}.json`, then `/pets/{id}`), as OpenAPI
    /// requires of concrete paths over templated ones.
    pub fn specificity(&self) -> Specificity {
        let PathPattern::Template { segments, .. } = self else { return Vec::new() };
        segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => (0, 0),
                Segment::Mixed(parts) => {
                    let text: usize = parts
                        .iter()
                        .map(|p| match p {
                            Part::Literal(l) => l.len(),
                            Part::Param(_) => 0,
                        })
                        .sum();
                    (1, usize::MAX - text)
                }
                Segment::Param(_) => (2, 0),
            })
            .collect()
    }

    /// A key equal for exactly the templates that match the same requests in the same way
    /// (the same literals and parameter places, names aside): OpenAPI forbids such pairs.
    pub fn shape_key(&self) -> String {
        let PathPattern::Template { segments, slash } = self else { return String::new() };
        let mut key = String::new();
        for seg in segments {
            key.push('/');
            let parts: Vec<Part> = match seg {
                Segment::Literal(l) => vec![Part::Literal(l.clone())],
                Segment::Param(n) => vec![Part::Param(n.clone())],
                Segment::Mixed(p) => p.clone(),
            };
            for p in parts {
                match p {
                    // `{`, `}` never stand in a literal, so the marks cannot be forged.
                    Part::Literal(l) => key.push_str(&l),
                    Part::Param(_) => key.push_str("{}"),
                }
            }
        }
        if *slash == TrailingSlash::Exact(true) {
            key.push('/');
        }
        key
    }

    /// Matches a normalised path, pushing template parameters into `params`; `fold`: letters
    /// of literal text match in either case.
    fn matches<'p>(&self, path: &'p str, fold: bool, params: &mut Vec<(String, &'p str)>) -> bool {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let has_slash = trimmed.ends_with('/');
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        let mut req = trimmed.split('/').filter(|s| !s.is_empty());
        match self {
            PathPattern::Prefix(prefix) => {
                prefix.iter().all(|p| req.next().is_some_and(|got| same_literal(p, got, fold)))
            }
            PathPattern::Template { segments, slash } => {
                if let TrailingSlash::Exact(want) = slash {
                    if *want != has_slash {
                        return false;
                    }
                }
                let start = params.len();
                for seg in segments {
                    let Some(got) = req.next() else {
                        params.truncate(start);
                        return false;
                    };
                    let ok = match seg {
                        Segment::Literal(lit) => same_literal(lit, got, fold),
                        Segment::Param(name) => {
                            params.push((name.clone(), got));
                            true
                        }
                        Segment::Mixed(parts) => match_parts(parts, got, fold, params),
                    };
                    if !ok {
                        params.truncate(start);
                        return false;
                    }
                }
                if req.next().is_some() {
                    params.truncate(start);
                    return false;
                }
                true
            }
        }
    }
}

/// Literal pattern segments go through the same normalisation as request paths, so
/// `/caf%c3%a9` in the config matches `/caf%C3%A9` in a request; text a client must
/// percent-encode in a path (non-ASCII, spaces, `"<>^`|`) is encoded first, so a document's
/// `/café` matches the `/caf%C3%A9` a client sends. Dot segments are not removed here: a
/// literal piece of a segment (`.` in `{name}.{ext}`) is text, not a path.
fn normal_literal(seg: &str) -> String {
    let mut encoded = String::with_capacity(seg.len());
    for &b in seg.as_bytes() {
        if b > 0x7e || b <= b' ' || b"\"<>^`|".contains(&b) {
            encoded.push_str(&format!("%{b:02X}"));
        } else {
            encoded.push(char::from(b));
        }
    }
    super::path::decode_unreserved(&encoded).unwrap_or(encoded)
}

/// A compiled route selector: a path pattern and, optionally, the methods it applies to.
#[derive(Debug, Clone)]
pub struct RouteMatcher {
    /// The path pattern.
    pub path: PathPattern,
    /// The methods this route selects; `None` selects every method.
    pub methods: Option<MethodSet>,
}

/// The result of matching a request against the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'p> {
    /// Index of the matched route in configuration order.
    pub index: usize,
    /// Template parameters, by name, as they appear in the normalised path.
    pub params: Vec<(String, &'p str)>,
}

/// What the upstream treats as the same path, so that the matcher does too (`paths` in the
/// configuration). Both off by default: OpenAPI paths are case-sensitive and have no suffixes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchRules {
    /// ASCII letters of literal text match in either case (`/Admin` is the `/admin` route),
    /// for upstreams that route case-insensitively (ASP.NET Core, IIS, Express by default).
    /// Parameters keep the case they were sent in.
    pub case_insensitive: bool,
    /// A format suffix on the last segment (`/admin.json`, `/admin.x.json`) may be dropped
    /// before matching, for upstreams that route it to the suffix-less path (Rails'
    /// `(.:format)`, Spring's suffix patterns before 5.3).
    pub format_suffix: bool,
}

/// Routes in configuration order.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<RouteMatcher>,
    rules: MatchRules,
}

impl RouteTable {
    /// Builds a table; the first matching route wins.
    pub fn new(routes: Vec<RouteMatcher>) -> RouteTable {
        RouteTable { routes, rules: MatchRules::default() }
    }

    /// Builds a table that matches as `rules` say the upstream does.
    pub fn with_rules(routes: Vec<RouteMatcher>, rules: MatchRules) -> RouteTable {
        RouteTable { routes, rules }
    }

    /// Finds the first route whose pattern and methods select this request.
    /// `path` must be the output of [`super::path::normalize`].
    pub fn find<'p>(&self, method: Option<Method>, path: &'p str) -> Option<RouteMatch<'p>> {
        self.find_from(0, method, path)
    }

    /// [`RouteTable::find`] among the routes from index `start` on.
    pub fn find_from<'p>(
        &self,
        start: usize,
        method: Option<Method>,
        path: &'p str,
    ) -> Option<RouteMatch<'p>> {
        let mut params = Vec::new();
        let fold = self.rules.case_insensitive;
        // The stems the upstream may serve `path` as, longest first, each a prefix of `path`
        // (so parameters still borrow from it); empty unless suffixes are declared.
        let stems: Vec<&'p str> = if self.rules.format_suffix { suffix_stems(path) } else { Vec::new() };
        for (index, route) in self.routes.iter().enumerate().skip(start) {
            if let Some(methods) = route.methods {
                if !methods.contains(method) {
                    continue;
                }
            }
            // A stem first: the suffix-routing upstream binds `/files/{name}` to `report`
            // of `report.pdf`. Then the path as sent (`/files/{id}.json` needs its suffix).
            if stems.iter().chain([&path]).any(|p| route.path.matches(p, fold, &mut params)) {
                return Some(RouteMatch { index, params });
            }
        }
        None
    }
}

/// Whether literal text `lit` (from a pattern) and `got` (from the request) are the same.
fn same_literal(lit: &str, got: &str, fold: bool) -> bool {
    if fold {
        lit.eq_ignore_ascii_case(got)
    } else {
        lit == got
    }
}

/// `path` without a format suffix on its last segment, for each `.` in that segment from the
/// last to the first (`/a/x.tar.gz` → `/a/x.tar`, `/a/x`); a trailing slash is dropped with
/// the suffix. A segment that starts with `.` keeps that dot.
fn suffix_stems(path: &str) -> Vec<&str> {
    let body = path.strip_suffix('/').unwrap_or(path);
    let start = body.rfind('/').map_or(0, |i| i + 1);
    let last = body.get(start..).unwrap_or("");
    last.match_indices('.').rev().filter(|(i, _)| *i > 0).filter_map(|(i, _)| body.get(..start + i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(specs: &[(&str, bool, Option<&[Method]>)]) -> RouteTable {
        RouteTable::new(
            specs
                .iter()
                .map(|(p, is_prefix, methods)| RouteMatcher {
                    path: if *is_prefix {
                        PathPattern::prefix(p).unwrap()
                    } else {
                        PathPattern::template(p).unwrap()
                    },
                    methods: methods.map(|m| m.iter().copied().collect()),
                })
                .collect(),
        )
    }

    #[test]
    fn templates_bind_parameters() {
        let t = table(&[("/users/{id}/orders/{order}", false, None)]);
        let m = t.find(Some(Method::GET), "/users/42/orders/7").unwrap();
        assert_eq!(m.index, 0);
        assert_eq!(m.params, vec![("id".to_string(), "42"), ("order".to_string(), "7")]);
        assert!(t.find(Some(Method::GET), "/users/42/orders").is_none());
        assert!(t.find(Some(Method::GET), "/users/42/orders/7/x").is_none());
        assert!(t.find(Some(Method::GET), "/users/42/orders/7/").is_some());
    }

    #[test]
    fn prefixes_respect_segment_boundaries() {
        let t = table(&[("/api", true, None)]);
        assert!(t.find(Some(Method::GET), "/api").is_some());
        assert!(t.find(Some(Method::GET), "/api/").is_some());
        assert!(t.find(Some(Method::GET), "/api/x/y").is_some());
        assert!(t.find(Some(Method::GET), "/apix").is_none());
        assert!(t.find(Some(Method::GET), "/").is_none());
        let root = table(&[("/", true, None)]);
        assert!(root.find(Some(Method::GET), "/anything").is_some());
    }

    #[test]
    fn first_match_wins_and_methods_select() {
        let t = table(&[
            ("/items/{id}", false, Some(&[Method::DELETE])),
            ("/items/{id}", false, None),
            ("/", true, None),
        ]);
        assert_eq!(t.find(Some(Method::DELETE), "/items/1").unwrap().index, 0);
        assert_eq!(t.find(Some(Method::GET), "/items/1").unwrap().index, 1);
        assert_eq!(t.find(None, "/items/1").unwrap().index, 1);
        let m = t.find(Some(Method::GET), "/other").unwrap();
        assert_eq!(m.index, 2);
        assert!(m.params.is_empty());
    }

    #[test]
    fn failed_template_leaves_no_stale_params() {
        let t = table(&[("/a/{x}/b", false, None), ("/a/{y}/c", false, None)]);
        let m = t.find(Some(Method::GET), "/a/1/c").unwrap();
        assert_eq!(m.params, vec![("y".to_string(), "1")]);
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(PathPattern::template("users"), Err(PatternError::NotAbsolute));
        assert_eq!(PathPattern::template("/a//b"), Err(PatternError::NonNormalSegment));
        assert_eq!(PathPattern::template("/a/../b"), Err(PatternError::NonNormalSegment));
        assert_eq!(PathPattern::template("/a/x{id"), Err(PatternError::BadBrace));
        assert_eq!(PathPattern::template("/a/x}"), Err(PatternError::BadBrace));
        assert_eq!(PathPattern::template("/a/{{id}}"), Err(PatternError::BadBrace));
        assert_eq!(PathPattern::template("/a/{a}{b}"), Err(PatternError::AdjacentParams("{a}{b}".into())));
        assert_eq!(PathPattern::template("/a/{a}.{b}.{c}.{d}.{e}"), Err(PatternError::TooManyParams));
        assert_eq!(PathPattern::template("/a/{}"), Err(PatternError::BadParamName(String::new())));
        assert_eq!(PathPattern::template("/a/{id}/{id}"), Err(PatternError::DuplicateParam("id".into())));
        assert_eq!(PathPattern::prefix("/a/{id}"), Err(PatternError::BadBrace));
        assert!(PathPattern::template("/").is_ok());
    }

    fn exact(specs: &[&str]) -> RouteTable {
        RouteTable::new(
            specs
                .iter()
                .map(|p| RouteMatcher { path: PathPattern::exact_template(p).unwrap(), methods: None })
                .collect(),
        )
    }

    fn ruled(specs: &[(&str, bool)], rules: MatchRules) -> RouteTable {
        RouteTable::with_rules(
            specs
                .iter()
                .map(|(p, is_prefix)| RouteMatcher {
                    path: if *is_prefix {
                        PathPattern::prefix(p).unwrap()
                    } else {
                        PathPattern::exact_template(p).unwrap()
                    },
                    methods: None,
                })
                .collect(),
            rules,
        )
    }

    #[test]
    fn case_insensitive_upstreams_fold_literals_not_parameters() {
        let specs = [("/admin", true), ("/v1/{Name}.JSON", false), ("/users/{id}/Orders", false)];
        let strict = ruled(&specs, MatchRules::default());
        assert!(strict.find(None, "/Admin/x").is_none(), "case-sensitive by default");
        let folded = ruled(&specs, MatchRules { case_insensitive: true, format_suffix: false });
        for path in ["/Admin/x", "/ADMIN", "/aDmIn/"] {
            assert_eq!(folded.find(None, path).map(|m| m.index), Some(0), "{path}");
        }
        let m = folded.find(None, "/V1/MixedCase.json").unwrap();
        assert_eq!((m.index, m.params), (1, vec![("Name".to_string(), "MixedCase")]));
        let m = folded.find(None, "/USERS/AbC/orders").unwrap();
        assert_eq!((m.index, m.params), (2, vec![("id".to_string(), "AbC")]));
        assert!(folded.find(None, "/adminx").is_none(), "still segment-aware");
        // Escapes are upper-cased by normalisation, so folding never touches them wrongly.
        assert!(folded.find(None, "/v1/caf%C3%A9.json").is_some());
    }

    #[test]
    fn format_suffixes_reach_the_suffixless_route() {
        let specs = [("/admin", true), ("/files/{name}", false), ("/docs/{id}.json", false), ("/", true)];
        let plain = ruled(&specs, MatchRules::default());
        assert_eq!(plain.find(None, "/admin.json").map(|m| m.index), Some(3));
        let rails = ruled(&specs, MatchRules { case_insensitive: false, format_suffix: true });
        for path in ["/admin.json", "/admin.x.json", "/admin.json/", "/admin"] {
            assert_eq!(rails.find(None, path).map(|m| m.index), Some(0), "{path}");
        }
        assert_eq!(rails.find(None, "/adminx.json").map(|m| m.index), Some(3));
        assert_eq!(rails.find(None, "/.admin").map(|m| m.index), Some(3), "a leading dot is no suffix");
        let m = rails.find(None, "/files/report.pdf").unwrap();
        assert_eq!(m.params, vec![("name".to_string(), "report")], "bound as the upstream binds it");
        let m = rails.find(None, "/docs/7.json").unwrap();
        assert_eq!(
            (m.index, m.params),
            (2, vec![("id".to_string(), "7")]),
            "a declared suffix still matches"
        );
        assert_eq!(suffix_stems("/a/x.tar.gz"), ["/a/x.tar", "/a/x"]);
        assert!(suffix_stems("/a.b/c").is_empty(), "only the last segment");
        let both = ruled(&specs, MatchRules { case_insensitive: true, format_suffix: true });
        assert_eq!(both.find(None, "/ADMIN.JSON").map(|m| m.index), Some(0));
    }

    #[test]
    fn parameters_inside_a_segment() {
        let t = exact(&["/files/{id}.json", "/v1/{name}:cancel", "/{owner}/{repo}.git", "/d/{name}.{ext}"]);
        let m = t.find(None, "/files/abc.json").unwrap();
        assert_eq!((m.index, m.params), (0, vec![("id".to_string(), "abc")]));
        assert!(t.find(None, "/files/.json").is_none(), "a parameter matches non-empty text");
        assert!(t.find(None, "/files/abc.xml").is_none());
        let m = t.find(None, "/v1/ops%2Fx:cancel").unwrap();
        assert_eq!((m.index, m.params), (1, vec![("name".to_string(), "ops%2Fx")]));
        let m = t.find(None, "/me/tool.git").unwrap();
        assert_eq!(m.params, vec![("owner".to_string(), "me"), ("repo".to_string(), "tool")]);
        let m = t.find(None, "/d/a.b.c").unwrap();
        assert_eq!(m.params, vec![("name".to_string(), "a"), ("ext".to_string(), "b.c")]);
        // A literal that occurs early does not stop a later split from matching.
        let t = exact(&["/x/{a}-v{b}"]);
        let m = t.find(None, "/x/my-tool-v2").unwrap();
        assert_eq!(m.params, vec![("a".to_string(), "my-tool"), ("b".to_string(), "2")]);
        // Multi-byte text is split at character boundaries only.
        let m = exact(&["/u/{a}x{b}"]).find(None, "/u/éxéé").unwrap();
        assert_eq!(m.params, vec![("a".to_string(), "é"), ("b".to_string(), "éé")]);
        // A segment crafted to make a split search try every combination is one pass long:
        // 20,000 dots against three parameters and a suffix that never comes.
        let crafted = format!("/d/{}", ".".repeat(20_000));
        assert!(exact(&["/d/{x}.{y}.{z}.json"]).find(None, &crafted).is_none());
        let ok = format!("/d/{}.json", "a.".repeat(5_000));
        assert!(exact(&["/d/{x}.{y}.{z}.json"]).find(None, &ok).is_some());
        assert_eq!(PathPattern::exact_template("/x/{a}-v{b}").unwrap().params(), ["a", "b"]);
        // OpenAPI templates may name a parameter twice; both values are bound.
        let m = exact(&["/r/System.{loc}/f/{loc}"]).find(None, "/r/System.eu/f/us").map(|m| m.params);
        assert_eq!(m, Some(vec![("loc".to_string(), "eu"), ("loc".to_string(), "us")]));
    }

    /// Every split tried, earlier parameters shortest first: the definition the one-pass
    /// glob match must agree with.
    fn brute<'a>(parts: &[Part], got: &'a str, out: &mut Vec<&'a str>) -> bool {
        match parts.split_first() {
            None => got.is_empty(),
            Some((Part::Literal(l), rest)) => {
                got.strip_prefix(l.as_str()).is_some_and(|r| brute(rest, r, out))
            }
            Some((Part::Param(_), rest)) => {
                for end in (1..=got.len()).filter(|e| got.is_char_boundary(*e)) {
                    out.push(&got[..end]);
                    if brute(rest, &got[end..], out) {
                        return true;
                    }
                    out.pop();
                }
                false
            }
        }
    }

    #[test]
    fn the_one_pass_match_agrees_with_trying_every_split() {
        // A small alphabet makes literals recur, the hard case for a one-pass match.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut checked = 0;
        for _ in 0..20_000 {
            let mut template = String::new();
            let mut params = 0;
            for i in 0..(1 + next(5)) {
                if next(2) == 0 && !template.ends_with('}') && params < MAX_SEGMENT_PARAMS {
                    template.push_str(&format!("{{p{i}}}"));
                    params += 1;
                } else {
                    for _ in 0..(1 + next(2)) {
                        template.push(['a', 'b', '.'][next(3) as usize]);
                    }
                }
            }
            let segment: String = (0..next(9)).map(|_| ['a', 'b', '.'][next(3) as usize]).collect();
            let Ok(parts) = parts(&template, &mut Vec::new(), false) else { continue };
            let mut want = Vec::new();
            let matched = brute(&parts, &segment, &mut want);
            let mut got = Vec::new();
            assert_eq!(
                match_parts(&parts, &segment, false, &mut got),
                matched,
                "{template} against {segment:?}"
            );
            let got: Vec<&str> = got.iter().map(|(_, v)| *v).collect();
            assert_eq!(got, if matched { want } else { Vec::new() }, "{template} against {segment:?}");
            checked += 1;
        }
        assert!(checked > 10_000, "only {checked} cases");
    }

    #[test]
    fn exact_templates_keep_the_trailing_slash_and_merge_empty_segments() {
        let t = exact(&["/users", "/teams/", "/a//b"]);
        assert_eq!(t.find(None, "/users").unwrap().index, 0);
        assert!(t.find(None, "/users/").is_none());
        assert_eq!(t.find(None, "/teams/").unwrap().index, 1);
        assert!(t.find(None, "/teams").is_none());
        assert_eq!(t.find(None, "/a/b").unwrap().index, 2);
        assert!(exact(&["/"]).find(None, "/").is_some());
        // Route templates ignore it, so a rule is not escaped by adding one.
        assert!(table(&[("/users", false, None)]).find(None, "/users/").is_some());
    }

    #[test]
    fn specificity_and_shape() {
        let p = |s: &str| PathPattern::exact_template(s).unwrap();
        let mut list = vec![p("/pets/{id}"), p("/pets/{id}.json"), p("/pets/mine"), p("/pets/{id}.{x}")];
        list.sort_by_key(PathPattern::specificity);
        assert_eq!(list, vec![p("/pets/mine"), p("/pets/{id}.json"), p("/pets/{id}.{x}"), p("/pets/{id}")]);
        assert_eq!(p("/u/{id}").shape_key(), p("/u/{name}").shape_key());
        assert_eq!(p("/u/{id}.json").shape_key(), p("/u/{name}.json").shape_key());
        assert_ne!(p("/u/{id}").shape_key(), p("/u/{id}/").shape_key());
        assert_ne!(p("/u/{id}").shape_key(), p("/u/{id}.json").shape_key());
    }

    #[test]
    fn literals_are_normalised_like_paths() {
        let t = table(&[("/caf%c3%a9/%61", false, None)]);
        assert!(t.find(Some(Method::GET), "/caf%C3%A9/a").is_some());
    }
}
