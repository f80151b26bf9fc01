//! api-guard patch: `pattern` and `patternProperties` are ECMA-262 regular expressions, the
//! dialect JSON Schema and OpenAPI specify, matched by `regress` instead of being translated to
//! the `regex` crate's syntax (which refuses lookaround, back-references and much of what real
//! documents write).
//!
//! A pattern is compiled with the `u` flag, as JSON Schema 2020-12 asks; one that is only valid
//! without it (Annex B syntax such as `[\w-.]`, which browsers accept) is compiled without it.
//!
//! regress backtracks, so a pattern can take exponential time on a crafted string. Each match
//! may take at most [`STEPS_BASE`] + [`STEPS_PER_BYTE`] × the string's length backtracking
//! steps; one that would take more gives up and counts as not matching, so the value is
//! refused (fail closed). The cost of validating a request is then linear in its size, as
//! with a linear-time engine, while ordinary patterns (which backtrack a few times per
//! character at most) never come near the bound.

use std::fmt;

/// Backtracking steps any match may take.
pub const STEPS_BASE: u64 = 1024;
/// Further backtracking steps a match may take per byte of the string.
pub const STEPS_PER_BYTE: u64 = 64;

/// A compiled ECMA-262 pattern.
pub(crate) struct Regex {
    re: regress::Regex,
    src: String,
}

impl Regex {
    /// Compiles `pattern` (with the `u` flag, else without it).
    pub(crate) fn new(pattern: &str) -> Result<Regex, regress::Error> {
        let unicode = regress::Flags { unicode: true, ..regress::Flags::default() };
        let re = match regress::Regex::with_flags(pattern, unicode) {
            Ok(re) => re,
            Err(_) => regress::Regex::with_flags(pattern, regress::Flags::default())?,
        };
        Ok(Regex { re, src: pattern.to_string() })
    }

    /// Whether `text` holds a match (ECMA-262 `RegExp.prototype.test`) within the bound.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        let bound = STEPS_BASE.saturating_add(STEPS_PER_BYTE.saturating_mul(text.len() as u64));
        self.re.is_match_bounded(text, bound).0.unwrap_or(false)
    }

    /// The pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.src
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regex({:?})", self.src)
    }
}
