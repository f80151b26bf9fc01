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
    /// A `{` or `}` that is not a whole-segment `{name}` parameter.
    BadBrace,
    /// A parameter name that is empty or not `[A-Za-z0-9_]`.
    BadParamName(String),
    /// The same parameter name twice.
    DuplicateParam(String),
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::NotAbsolute => f.write_str("must start with '/'"),
            PatternError::NonNormalSegment => f.write_str(
                "must not contain empty, '.' or '..' segments (paths are normalised before matching)",
            ),
            PatternError::BadBrace => f.write_str("a parameter must be a whole segment of the form '{name}'"),
            PatternError::BadParamName(n) => {
                write!(f, "parameter name '{n}' must be non-empty ASCII letters, digits, '_', '-' or '.'")
            }
            PatternError::DuplicateParam(n) => write!(f, "parameter '{n}' appears twice"),
        }
    }
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the request's segment.
    Literal(String),
    /// Matches any one non-empty segment and binds it to this name.
    Param(String),
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// A path template such as `/users/{id}/orders`: the whole path must match, `{name}` matches
    /// exactly one non-empty segment. A trailing slash in the request is ignored.
    Template(Vec<Segment>),
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

impl PathPattern {
    /// Compiles a template such as `/users/{id}`.
    pub fn template(pattern: &str) -> Result<PathPattern, PatternError> {
        let mut out = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for seg in segments(pattern)? {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if name.is_empty()
                    || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
                {
                    return Err(PatternError::BadParamName(name.to_string()));
                }
                if names.iter().any(|n| n == name) {
                    return Err(PatternError::DuplicateParam(name.to_string()));
                }
                names.push(name.to_string());
                out.push(Segment::Param(name.to_string()));
            } else if seg.contains(['{', '}']) {
                return Err(PatternError::BadBrace);
            } else {
                out.push(Segment::Literal(normal_literal(seg)));
            }
        }
        Ok(PathPattern::Template(out))
    }

    /// Compiles a prefix such as `/api/v1`.
    pub fn prefix(pattern: &str) -> Result<PathPattern, PatternError> {
        let segs = segments(pattern)?;
        if segs.iter().any(|s| s.contains(['{', '}'])) {
            return Err(PatternError::BadBrace);
        }
        Ok(PathPattern::Prefix(segs.into_iter().map(normal_literal).collect()))
    }

    /// Matches a normalised path, pushing template parameters into `params`.
    fn matches<'p>(&self, path: &'p str, params: &mut Vec<(String, &'p str)>) -> bool {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        let mut req = trimmed.split('/').filter(|s| !s.is_empty());
        match self {
            PathPattern::Prefix(prefix) => prefix.iter().all(|p| req.next() == Some(p.as_str())),
            PathPattern::Template(template) => {
                let start = params.len();
                for seg in template {
                    let Some(got) = req.next() else {
                        params.truncate(start);
                        return false;
                    };
                    match seg {
                        Segment::Literal(lit) if lit == got => {}
                        Segment::Literal(_) => {
                            params.truncate(start);
                            return false;
                        }
                        Segment::Param(name) => params.push((name.clone(), got)),
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
/// `/caf%c3%a9` in the config matches `/caf%C3%A9` in a request.
fn normal_literal(seg: &str) -> String {
    super::path::normalize(&format!("/{seg}"))
        .map(|s| s.trim_start_matches('/').to_string())
        .unwrap_or_else(|_| seg.to_string())
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

/// Routes in configuration order.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<RouteMatcher>,
}

impl RouteTable {
    /// Builds a table; the first matching route wins.
    pub fn new(routes: Vec<RouteMatcher>) -> RouteTable {
        RouteTable { routes }
    }

    /// Finds the first route whose pattern and methods select this request.
    /// `path` must be the output of [`super::path::normalize`].
    pub fn find<'p>(&self, method: Option<Method>, path: &'p str) -> Option<RouteMatch<'p>> {
        let mut params = Vec::new();
        for (index, route) in self.routes.iter().enumerate() {
            if let Some(methods) = route.methods {
                if !methods.contains(method) {
                    continue;
                }
            }
            if route.path.matches(path, &mut params) {
                return Some(RouteMatch { index, params });
            }
        }
        None
    }
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
        assert_eq!(PathPattern::template("/a/x{id}"), Err(PatternError::BadBrace));
        assert_eq!(PathPattern::template("/a/{}"), Err(PatternError::BadParamName(String::new())));
        assert_eq!(PathPattern::template("/a/{id}/{id}"), Err(PatternError::DuplicateParam("id".into())));
        assert_eq!(PathPattern::prefix("/a/{id}"), Err(PatternError::BadBrace));
        assert!(PathPattern::template("/").is_ok());
    }

    #[test]
    fn literals_are_normalised_like_paths() {
        let t = table(&[("/caf%c3%a9/%61", false, None)]);
        assert!(t.find(Some(Method::GET), "/caf%C3%A9/a").is_some());
    }
}
