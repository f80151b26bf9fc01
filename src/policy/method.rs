//! HTTP methods as a closed set, and compact sets of them.

use std::fmt;

use serde::Deserialize;

/// An HTTP method api-guard can be configured with.
///
/// Requests with any other method (extension methods) never match a configured set, so they are
/// refused wherever a method allowlist applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Method {
    GET,
    HEAD,
    POST,
    PUT,
    PATCH,
    DELETE,
    OPTIONS,
    TRACE,
    CONNECT,
}

impl Method {
    /// Every method, in the order used when listing them (e.g. in `Allow`).
    pub const ALL: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ];

    /// Parses a request method. Methods are case-sensitive (RFC 9110 §9.1), so `get` is not `GET`.
    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The method's token.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::OPTIONS => "OPTIONS",
            Method::TRACE => "TRACE",
            Method::CONNECT => "CONNECT",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of methods, stored as a bit mask so membership costs nothing per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MethodSet(u16);

impl MethodSet {
    /// The set of every method.
    pub fn all() -> MethodSet {
        MethodSet::from_iter(Method::ALL)
    }

    /// Whether `method` is in the set. `None` (an extension method) is never in a set.
    pub fn contains(self, method: Option<Method>) -> bool {
        method.is_some_and(|m| self.0 & m.bit() != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The methods in either set.
    pub fn union(self, other: MethodSet) -> MethodSet {
        MethodSet(self.0 | other.0)
    }

    /// The value of an `Allow` header listing this set (RFC 9110 §10.2.1).
    pub fn allow_header(self) -> String {
        let names: Vec<&str> =
            Method::ALL.into_iter().filter(|m| self.contains(Some(*m))).map(Method::as_str).collect();
        names.join(", ")
    }
}

impl FromIterator<Method> for MethodSet {
    fn from_iter<I: IntoIterator<Item = Method>>(iter: I) -> Self {
        MethodSet(iter.into_iter().fold(0, |acc, m| acc | m.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_case_sensitive_and_closed() {
        assert_eq!(Method::parse("GET"), Some(Method::GET));
        assert_eq!(Method::parse("get"), None);
        assert_eq!(Method::parse("PROPFIND"), None);
        assert_eq!(Method::parse(""), None);
    }

    #[test]
    fn set_membership_and_allow_header() {
        let set: MethodSet = [Method::POST, Method::GET].into_iter().collect();
        assert!(set.contains(Some(Method::GET)));
        assert!(!set.contains(Some(Method::PUT)));
        assert!(!set.contains(None));
        assert_eq!(set.allow_header(), "GET, POST");
        assert!(MethodSet::default().is_empty());
        assert_eq!(MethodSet::all().allow_header().split(", ").count(), 9);
    }
}
