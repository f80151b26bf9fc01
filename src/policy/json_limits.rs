//! JSON shape limits, checked in one streaming pass over the body bytes before any parsing.
//!
//! A hostile JSON body is cheap to send and expensive to parse: ten thousand nested arrays
//! overflow recursive parsers, a million one-letter keys cost a million allocations, and a
//! duplicated key lets a checker and an upstream read different values. [`JsonScanner`] walks
//! the bytes once, chunk by chunk as the host delivers them, with no recursion and no tree: it
//! keeps only the open containers, and each object's member names (to find duplicates). It
//! stops at the first violation, so a bad body costs at most the bytes read so far.
//!
//! It also checks the JSON grammar (RFC 8259) and UTF-8 fully, so a body it accepts parses.

use std::collections::BTreeSet;

use super::config::{ConfigError, DuplicateKeys, JsonLimitsConfig};
use super::json::pointer_token;
use super::json_cursor::ascii_run;

/// Default deepest nesting of arrays and objects.
pub const DEFAULT_MAX_DEPTH: u32 = 32;
/// Default most members in one object.
pub const DEFAULT_MAX_OBJECT_KEYS: u32 = 1000;
/// Default most elements in one array.
pub const DEFAULT_MAX_ARRAY_LENGTH: u32 = 10_000;
/// Default longest string (member names included), in bytes as sent.
pub const DEFAULT_MAX_STRING_LENGTH: u32 = 65_536;
/// Default longest number literal, in characters.
pub const DEFAULT_MAX_NUMBER_LENGTH: u32 = 40;

/// Compiled JSON limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting (a scalar at the top is depth 0; `[]` is depth 1).
    pub max_depth: u32,
    /// Most members per object.
    pub max_object_keys: u32,
    /// Most elements per array.
    pub max_array_length: u32,
    /// Longest string in bytes as sent (escapes count as written).
    pub max_string_length: u32,
    /// Longest number literal.
    pub max_number_length: u32,
    /// Whether an object may name a member twice.
    pub allow_duplicate_keys: bool,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_object_keys: DEFAULT_MAX_OBJECT_KEYS,
            max_array_length: DEFAULT_MAX_ARRAY_LENGTH,
            max_string_length: DEFAULT_MAX_STRING_LENGTH,
            max_number_length: DEFAULT_MAX_NUMBER_LENGTH,
            allow_duplicate_keys: false,
        }
    }
}

impl JsonLimits {
    /// Resolves a route's settings over the global ones over the defaults. `at` names the
    /// object that set each value, for errors.
    pub fn compile(
        global: Option<&JsonLimitsConfig>,
        route: Option<&JsonLimitsConfig>,
        at: &str,
    ) -> Result<JsonLimits, ConfigError> {
        let d = JsonLimits::default();
        let field = |f: fn(&JsonLimitsConfig) -> Option<u32>, name: &str, default: u32| {
            let (v, p) = match route.and_then(f) {
                Some(v) => (v, at.to_string()),
                None => match global.and_then(f) {
                    Some(v) => (v, "limits.json".to_string()),
                    None => return Ok(default),
                },
            };
            if v == 0 {
                return Err(ConfigError::new(format!("{p}.{name}"), "must be at least 1"));
            }
            Ok(v)
        };
        let dup = route.and_then(|r| r.duplicate_keys).or_else(|| global.and_then(|g| g.duplicate_keys));
        Ok(JsonLimits {
            max_depth: field(|c| c.max_depth, "max_depth", d.max_depth)?,
            max_object_keys: field(|c| c.max_object_keys, "max_object_keys", d.max_object_keys)?,
            max_array_length: field(|c| c.max_array_length, "max_array_length", d.max_array_length)?,
            max_string_length: field(|c| c.max_string_length, "max_string_length", d.max_string_length)?,
            max_number_length: field(|c| c.max_number_length, "max_number_length", d.max_number_length)?,
            allow_duplicate_keys: dup == Some(DuplicateKeys::Allow),
        })
    }
}

/// What was wrong with a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFault {
    /// Not JSON: a grammar error, invalid UTF-8, or a lone surrogate escape.
    Malformed,
    /// Nested deeper than `max_depth`.
    Depth,
    /// An object with more than `max_object_keys` members.
    ObjectKeys,
    /// An array with more than `max_array_length` elements.
    ArrayLength,
    /// A string longer than `max_string_length`.
    StringLength,
    /// A number literal longer than `max_number_length`.
    NumberLength,
    /// A member name used twice in one object.
    DuplicateKey,
}

impl JsonFault {
    /// The limit's name, as in the configuration (the `keyword` of a problem `errors` entry).
    pub fn keyword(self) -> &'static str {
        match self {
            JsonFault::Malformed => "json",
            JsonFault::Depth => "max_depth",
            JsonFault::ObjectKeys => "max_object_keys",
            JsonFault::ArrayLength => "max_array_length",
            JsonFault::StringLength => "max_string_length",
            JsonFault::NumberLength => "max_number_length",
            JsonFault::DuplicateKey => "duplicate_keys",
        }
    }

    /// A message for the client; never contains body data.
    pub fn message(self) -> &'static str {
        match self {
            JsonFault::Malformed => "the body is not well-formed JSON (or not UTF-8)",
            JsonFault::Depth => "arrays and objects are nested too deeply",
            JsonFault::ObjectKeys => "an object has too many members",
            JsonFault::ArrayLength => "an array has too many elements",
            JsonFault::StringLength => "a string is too long",
            JsonFault::NumberLength => "a number literal is too long",
            JsonFault::DuplicateKey => "an object names the same member twice",
        }
    }
}

/// A violation and where it was found (an RFC 6901 JSON pointer into the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonViolation {
    /// What was wrong.
    pub fault: JsonFault,
    /// Where: the member or element being read.
    pub pointer: String,
}

/// Member names seen in one object. Small objects (the common case) keep their names in one
/// buffer and are searched linearly, with no allocation per name; past [`SMALL`] names they
/// move to an ordered set, so a hostile object costs O(n log n), not O(n²).
#[derive(Debug, Default)]
struct Names {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    set: Option<BTreeSet<Vec<u8>>>,
}

const SMALL: usize = 32;

impl Names {
    /// Forgets every name, keeping the buffers.
    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.set = None;
    }

    /// Records `name`; false if it was already there.
    fn insert(&mut self, name: &[u8]) -> bool {
        if let Some(set) = &mut self.set {
            return set.insert(name.to_vec());
        }
        let bytes = &self.bytes;
        if self.spans.iter().any(|&(a, b)| bytes.get(a..b) == Some(name)) {
            return false;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.spans.push((start, self.bytes.len()));
        if self.spans.len() > SMALL {
            let set =
                self.spans.iter().filter_map(|&(a, b)| self.bytes.get(a..b)).map(<[u8]>::to_vec).collect();
            self.set = Some(set);
            self.bytes = Vec::new();
            self.spans = Vec::new();
        }
        true
    }
}

#[derive(Debug)]
enum Frame {
    Object { count: u32, key: Vec<u8>, seen: Names },
    Array { count: u32 },
}

/// Where a number literal is in its grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    Backslash,
    /// `\u` with `n` hex digits read so far, value `acc`.
    Unicode {
        n: u8,
        acc: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level value, after `:`, after `,` in an array.
    Value,
    /// After `[`: a value or `]`.
    ValueOrEnd,
    /// After `{`: a member name or `}`.
    KeyOrEnd,
    /// After `,` in an object.
    Key,
    /// After a member name.
    Colon,
    /// After a value inside a container, or after the top-level value.
    After,
    /// Inside a string.
    Str {
        key: bool,
        esc: Esc,
        /// Continuation bytes still expected in a UTF-8 sequence.
        cont: u8,
        /// Allowed range of the next continuation byte (the first one may be narrower).
        lo: u8,
        hi: u8,
        /// A high surrogate `\uD8xx` waiting for its low half.
        high: Option<u32>,
    },
    Number(Num),
    /// Inside `true`, `false` or `null`: the literal and how much has matched.
    Literal {
        word: &'static [u8],
        at: u8,
    },
}

/// The streaming scanner. Feed it the body in any split; then [`JsonScanner::finish`].
#[derive(Debug)]
pub struct JsonScanner {
    limits: JsonLimits,
    stack: Vec<Frame>,
    state: State,
    /// Length of the current string or number.
    len: u32,
    /// Whether a top-level value has started.
    started: bool,
    failed: Option<JsonViolation>,
    /// The buffers of closed objects, kept for the next ones: a body's objects then cost no
    /// allocation past the first few (allocation was a third of the scan's time).
    spare: Vec<(Vec<u8>, Names)>,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn hex(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

fn push_utf8(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

impl JsonScanner {
    /// A scanner for one body.
    pub fn new(limits: JsonLimits) -> JsonScanner {
        JsonScanner {
            limits,
            stack: Vec::new(),
            state: State::Value,
            len: 0,
            started: false,
            failed: None,
            spare: Vec::new(),
        }
    }

    /// Reads the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), JsonViolation> {
        if let Some(v) = &self.failed {
            return Err(v.clone());
        }
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            // Fast path: a run of plain ASCII inside a string needs no state change.
            if let State::Str { key, esc: Esc::None, cont: 0, high: None, .. } = self.state {
                let run = ascii_run(bytes.get(i..).unwrap_or_default());
                if run > 0 {
                    let run32 = u32::try_from(run).unwrap_or(u32::MAX);
                    if self.len.saturating_add(run32) > self.limits.max_string_length {
                        let v = JsonViolation {
                            fault: JsonFault::StringLength,
                            pointer: self.pointer(self.stack.len()),
                        };
                        self.failed = Some(v.clone());
                        return Err(v);
                    }
                    self.len += run32;
                    if key {
                        let chunk = bytes.get(i..i + run).unwrap_or_default();
                        if let Some(k) = self.key_bytes() {
                            k.extend_from_slice(chunk);
                        }
                    }
                    i += run;
                    continue;
                }
            }
            i += 1;
            if let Err(fault) = self.byte(b) {
                // A container with too many entries is itself the place at fault.
                let whole = matches!(fault, JsonFault::ObjectKeys | JsonFault::ArrayLength);
                let depth = if whole { self.stack.len().saturating_sub(1) } else { self.stack.len() };
                let v = JsonViolation { fault, pointer: self.pointer(depth) };
                self.failed = Some(v.clone());
                return Err(v);
            }
        }
        Ok(())
    }

    /// Ends the body: fails if the value is incomplete (or there was none).
    pub fn finish(&mut self) -> Result<(), JsonViolation> {
        if let Some(v) = &self.failed {
            return Err(v.clone());
        }
        // A number at the top level ends with the body.
        if let State::Number(n) = self.state {
            if self.stack.is_empty() && matches!(n, Num::Zero | Num::Int | Num::Frac | Num::ExpDigits) {
                self.state = State::After;
            }
        }
        if self.started && self.stack.is_empty() && self.state == State::After {
            Ok(())
        } else {
            let v = JsonViolation { fault: JsonFault::Malformed, pointer: self.pointer(self.stack.len()) };
            self.failed = Some(v.clone());
            Err(v)
        }
    }

    /// The JSON pointer of the place being read, through the outer `depth` containers.
    fn pointer(&self, depth: usize) -> String {
        let mut out = String::new();
        for f in self.stack.iter().take(depth) {
            out.push('/');
            match f {
                Frame::Array { count } => out.push_str(&count.saturating_sub(1).to_string()),
                Frame::Object { key, .. } => out.push_str(&pointer_token(&String::from_utf8_lossy(key))),
            }
        }
        out
    }

    /// A value starts with byte `b`.
    fn begin_value(&mut self, b: u8) -> Result<(), JsonFault> {
        self.started = true;
        self.len = 0;
        match b {
            b'{' | b'[' => {
                if self.stack.len() >= self.limits.max_depth as usize {
                    return Err(JsonFault::Depth);
                }
                if b == b'{' {
                    let (key, seen) = self.spare.pop().unwrap_or_default();
                    self.stack.push(Frame::Object { count: 0, key, seen });
                    self.state = State::KeyOrEnd;
                } else {
                    self.stack.push(Frame::Array { count: 0 });
                    self.state = State::ValueOrEnd;
                }
            }
            b'"' => self.state = State::Str { key: false, esc: Esc::None, cont: 0, lo: 0, hi: 0, high: None },
            b'-' => {
                self.len = 1;
                self.state = State::Number(Num::Minus);
            }
            b'0' => {
                self.len = 1;
                self.state = State::Number(Num::Zero);
            }
            b'1'..=b'9' => {
                self.len = 1;
                self.state = State::Number(Num::Int);
            }
            b't' => self.state = State::Literal { word: b"true", at: 1 },
            b'f' => self.state = State::Literal { word: b"false", at: 1 },
            b'n' => self.state = State::Literal { word: b"null", at: 1 },
            _ => return Err(JsonFault::Malformed),
        }
        Ok(())
    }

    /// Counts a new element in the innermost array, if that is where a value starts.
    fn count_element(&mut self) -> Result<(), JsonFault> {
        if let Some(Frame::Array { count }) = self.stack.last_mut() {
            *count += 1;
            if *count > self.limits.max_array_length {
                return Err(JsonFault::ArrayLength);
            }
        }
        Ok(())
    }

    fn begin_key(&mut self) -> Result<(), JsonFault> {
        if let Some(Frame::Object { count, key, .. }) = self.stack.last_mut() {
            *count += 1;
            key.clear();
            if *count > self.limits.max_object_keys {
                return Err(JsonFault::ObjectKeys);
            }
        }
        self.len = 0;
        self.state = State::Str { key: true, esc: Esc::None, cont: 0, lo: 0, hi: 0, high: None };
        Ok(())
    }

    fn close(&mut self, b: u8) -> Result<(), JsonFault> {
        let ok = matches!(
            (self.stack.last(), b),
            (Some(Frame::Object { .. }), b'}') | (Some(Frame::Array { .. }), b']')
        );
        if !ok {
            return Err(JsonFault::Malformed);
        }
        if let Some(Frame::Object { mut key, mut seen, .. }) = self.stack.pop() {
            key.clear();
            seen.clear();
            self.spare.push((key, seen));
        }
        self.state = State::After;
        Ok(())
    }

    fn key_bytes(&mut self) -> Option<&mut Vec<u8>> {
        match self.stack.last_mut() {
            Some(Frame::Object { key, .. }) => Some(key),
            _ => None,
        }
    }

    /// A member name is complete: check it for duplicates.
    fn end_key(&mut self) -> Result<(), JsonFault> {
        let allow = self.limits.allow_duplicate_keys;
        if let Some(Frame::Object { key, seen, .. }) = self.stack.last_mut() {
            if !allow && !seen.insert(key) {
                return Err(JsonFault::DuplicateKey);
            }
        }
        self.state = State::Colon;
        Ok(())
    }

    fn byte(&mut self, b: u8) -> Result<(), JsonFault> {
        match self.state {
            State::Value => {
                if is_ws(b) {
                    return Ok(());
                }
                if self.started && self.stack.is_empty() {
                    return Err(JsonFault::Malformed);
                }
                self.count_element()?;
                self.begin_value(b)
            }
            State::ValueOrEnd => {
                if is_ws(b) {
                    Ok(())
                } else if b == b']' {
                    self.close(b)
                } else {
                    self.count_element()?;
                    self.begin_value(b)
                }
            }
            State::KeyOrEnd | State::Key => {
                if is_ws(b) {
                    Ok(())
                } else if b == b'"' {
                    self.begin_key()
                } else if b == b'}' && self.state == State::KeyOrEnd {
                    self.close(b)
                } else {
                    Err(JsonFault::Malformed)
                }
            }
            State::Colon => {
                if is_ws(b) {
                    Ok(())
                } else if b == b':' {
                    self.state = State::Value;
                    Ok(())
                } else {
                    Err(JsonFault::Malformed)
                }
            }
            State::After => {
                if is_ws(b) {
                    return Ok(());
                }
                match (self.stack.last(), b) {
                    (Some(Frame::Object { .. }), b',') => {
                        self.state = State::Key;
                        Ok(())
                    }
                    (Some(Frame::Array { .. }), b',') => {
                        self.state = State::Value;
                        Ok(())
                    }
                    (Some(_), b'}' | b']') => self.close(b),
                    _ => Err(JsonFault::Malformed),
                }
            }
            State::Literal { word, at } => {
                if word.get(usize::from(at)) != Some(&b) {
                    return Err(JsonFault::Malformed);
                }
                let at = at + 1;
                self.state =
                    if usize::from(at) == word.len() { State::After } else { State::Literal { word, at } };
                Ok(())
            }
            State::Number(n) => self.number(n, b),
            State::Str { key, esc, cont, lo, hi, high } => self.string(key, esc, cont, lo, hi, high, b),
        }
    }

    fn number(&mut self, n: Num, b: u8) -> Result<(), JsonFault> {
        let next = match (n, b) {
            (Num::Minus, b'0') => Some(Num::Zero),
            (Num::Minus, b'1'..=b'9') => Some(Num::Int),
            (Num::Int, b'0'..=b'9') => Some(Num::Int),
            (Num::Zero | Num::Int, b'.') => Some(Num::Dot),
            (Num::Dot | Num::Frac, b'0'..=b'9') => Some(Num::Frac),
            (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Some(Num::Exp),
            (Num::Exp, b'+' | b'-') => Some(Num::ExpSign),
            (Num::Exp | Num::ExpSign | Num::ExpDigits, b'0'..=b'9') => Some(Num::ExpDigits),
            _ => None,
        };
        match next {
            Some(next) => {
                self.len += 1;
                if self.len > self.limits.max_number_length {
                    return Err(JsonFault::NumberLength);
                }
                self.state = State::Number(next);
                Ok(())
            }
            None if matches!(n, Num::Zero | Num::Int | Num::Frac | Num::ExpDigits) => {
                // The number ended; this byte belongs to what follows.
                self.state = State::After;
                self.byte(b)
            }
            None => Err(JsonFault::Malformed),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn string(
        &mut self,
        key: bool,
        esc: Esc,
        cont: u8,
        lo: u8,
        hi: u8,
        high: Option<u32>,
        b: u8,
    ) -> Result<(), JsonFault> {
        let end_quote = b == b'"' && esc == Esc::None && cont == 0;
        if !end_quote {
            self.len += 1;
            if self.len > self.limits.max_string_length {
                return Err(JsonFault::StringLength);
            }
        }
        let st = |esc, cont, lo, hi, high| State::Str { key, esc, cont, lo, hi, high };
        // Inside a multi-byte UTF-8 sequence.
        if cont > 0 {
            if b < lo || b > hi {
                return Err(JsonFault::Malformed);
            }
            if key {
                if let Some(k) = self.key_bytes() {
                    k.push(b);
                }
            }
            self.state = st(Esc::None, cont - 1, 0x80, 0xBF, None);
            return Ok(());
        }
        match esc {
            Esc::Backslash => {
                let decoded = match b {
                    b'"' => Some('"'),
                    b'\\' => Some('\\'),
                    b'/' => Some('/'),
                    b'b' => Some('\u{8}'),
                    b'f' => Some('\u{c}'),
                    b'n' => Some('\n'),
                    b'r' => Some('\r'),
                    b't' => Some('\t'),
                    b'u' => None,
                    _ => return Err(JsonFault::Malformed),
                };
                match decoded {
                    Some(c) => {
                        if high.is_some() {
                            return Err(JsonFault::Malformed);
                        }
                        if key {
                            if let Some(k) = self.key_bytes() {
                                push_utf8(k, c);
                            }
                        }
                        self.state = st(Esc::None, 0, 0, 0, None);
                    }
                    None => self.state = st(Esc::Unicode { n: 0, acc: 0 }, 0, 0, 0, high),
                }
                return Ok(());
            }
            Esc::Unicode { n, acc } => {
                let d = hex(b).ok_or(JsonFault::Malformed)?;
                let acc = acc * 16 + d;
                if n < 3 {
                    self.state = st(Esc::Unicode { n: n + 1, acc }, 0, 0, 0, high);
                    return Ok(());
                }
                let c = match (high, acc) {
                    (None, 0xD800..=0xDBFF) => {
                        self.state = st(Esc::None, 0, 0, 0, Some(acc));
                        return Ok(());
                    }
                    (Some(h), 0xDC00..=0xDFFF) => {
                        char::from_u32(0x10000 + ((h - 0xD800) << 10) + (acc - 0xDC00))
                    }
                    (None, 0xDC00..=0xDFFF) | (Some(_), _) => None,
                    (None, _) => char::from_u32(acc),
                }
                .ok_or(JsonFault::Malformed)?;
                if key {
                    if let Some(k) = self.key_bytes() {
                        push_utf8(k, c);
                    }
                }
                self.state = st(Esc::None, 0, 0, 0, None);
                return Ok(());
            }
            Esc::None => {}
        }
        // A high surrogate must be followed at once by `\u` and its low half.
        if high.is_some() && b != b'\\' {
            return Err(JsonFault::Malformed);
        }
        let (cont, lo, hi) = match b {
            b'"' => {
                self.state = State::After;
                return if key { self.end_key() } else { Ok(()) };
            }
            b'\\' => {
                self.state = st(Esc::Backslash, 0, 0, 0, high);
                return Ok(());
            }
            0x00..=0x1F => return Err(JsonFault::Malformed),
            0x20..=0x7F => (0, 0, 0),
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return Err(JsonFault::Malformed),
        };
        if key {
            if let Some(k) = self.key_bytes() {
                k.push(b);
            }
        }
        self.state = st(Esc::None, cont, lo, hi, None);
        Ok(())
    }
}

/// Scans a whole body at once.
pub fn scan(limits: JsonLimits, body: &[u8]) -> Result<(), JsonViolation> {
    let mut s = JsonScanner::new(limits);
    s.feed(body)?;
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(body: &[u8]) -> Option<(JsonFault, String)> {
        scan(JsonLimits::default(), body).err().map(|v| (v.fault, v.pointer))
    }

    #[test]
    fn agrees_with_serde_json_on_grammar() {
        let cases: &[&[u8]] = &[
            b"{}",
            b"[]",
            b"0",
            b"-0",
            b"-0.5e+10",
            b"1E5",
            b"\"a\"",
            b"true",
            b" null ",
            b"{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\\ud83d\\ude00\"}",
            b"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
            b"",
            b" ",
            b"{",
            b"[1,]",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{1:2}",
            b"01",
            b"1.",
            b"1.e5",
            b"-",
            b"+1",
            b".5",
            b"1e",
            b"1e+",
            b"tru",
            b"truex",
            b"nul",
            b"[1 2]",
            b"1 2",
            b"\"\\x\"",
            b"\"\\ud800\"",
            b"\"\\udc00\"",
            b"\"\\ud800\\u0041\"",
            b"\"\x01\"",
            b"\"\xff\"",
            b"\"\xc0\x80\"",
            b"\"\xed\xa0\x80\"",
            b"\"\xf4\x90\x80\x80\"",
            b"\"\xe2\x82\"",
            b"\xef\xbb\xbf{}",
            b"[[]]]",
            b"{]",
            b"[}",
            b"\"abc",
            b"{\"a\":}",
            b"NaN",
            b"[1,\n2\t]\r\n",
        ];
        for case in cases {
            let serde = serde_json::from_slice::<serde_json::Value>(case).is_ok();
            let ours = scan(JsonLimits::default(), case).is_ok();
            assert_eq!(ours, serde, "{:?}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn any_split_gives_the_same_answer() {
        let bodies: &[&[u8]] = &[
            b"{\"k\\u00e9y\":[1.5e3,true,null,\"\xf0\x9f\x98\x80\\ud83d\\ude00\"],\"k\xc3\xa9y\":0}",
            b"[123456,-0.25]",
            b"{\"a\":{\"b\":[[],{}]}}",
        ];
        for body in bodies {
            let whole = scan(JsonLimits::default(), body);
            for cut in 0..=body.len() {
                let (a, b) = body.split_at(cut);
                let mut s = JsonScanner::new(JsonLimits::default());
                let split = s.feed(a).and_then(|()| s.feed(b)).and_then(|()| s.finish());
                assert_eq!(split, whole, "cut at {cut}");
            }
            let mut s = JsonScanner::new(JsonLimits::default());
            let bytewise = body.iter().try_for_each(|b| s.feed(&[*b])).and_then(|()| s.finish());
            assert_eq!(bytewise, whole);
        }
    }

    #[test]
    fn limits_are_enforced_with_pointers() {
        let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert_eq!(fault(deep.as_bytes()).map(|f| f.0), Some(JsonFault::Depth));
        let ok = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert_eq!(fault(ok.as_bytes()), None);

        let dup = br#"{"a":{"x/y":{"k":1,"k":2}}}"#;
        assert_eq!(fault(dup), Some((JsonFault::DuplicateKey, "/a/x~1y/k".into())));
        // Escapes are decoded before comparing names.
        assert_eq!(fault(br#"{"a":1,"\u0061":2}"#).map(|f| f.0), Some(JsonFault::DuplicateKey));
        let allowing = JsonLimits { allow_duplicate_keys: true, ..JsonLimits::default() };
        assert!(scan(allowing, dup).is_ok());

        let long = format!("{{\"s\":[0,\"{}\"]}}", "x".repeat(65_537));
        assert_eq!(fault(long.as_bytes()), Some((JsonFault::StringLength, "/s/1".into())));
        let num = format!("[{}]", "1".repeat(41));
        assert_eq!(fault(num.as_bytes()), Some((JsonFault::NumberLength, "/0".into())));

        let small = JsonLimits { max_object_keys: 2, max_array_length: 3, ..JsonLimits::default() };
        assert_eq!(scan(small, br#"{"a":1,"b":2}"#), Ok(()));
        assert_eq!(scan(small, br#"{"a":1,"b":2,"c":3}"#).map_err(|v| v.fault), Err(JsonFault::ObjectKeys));
        assert_eq!(scan(small, b"[1,2,3]"), Ok(()));
        assert_eq!(
            scan(small, b"[1,2,3,4]").map_err(|v| (v.fault, v.pointer)),
            Err((JsonFault::ArrayLength, "".into()))
        );
    }

    #[test]
    fn duplicates_are_found_in_small_and_large_objects() {
        for n in [3usize, 32, 33, 200] {
            let mut body: String = (0..n).map(|i| format!("\"k{i}\":{i},")).collect();
            body.insert(0, '{');
            assert!(scan(JsonLimits::default(), format!("{}\"end\":0}}", body).as_bytes()).is_ok(), "{n}");
            for dup in [0, n / 2, n - 1] {
                let bad = format!("{body}\"k{dup}\":0}}");
                let v = scan(JsonLimits::default(), bad.as_bytes()).unwrap_err();
                assert_eq!((v.fault, v.pointer), (JsonFault::DuplicateKey, format!("/k{dup}")), "{n} {dup}");
            }
        }
    }

    #[test]
    fn objects_after_a_closed_one_start_with_no_names() {
        // Closed objects' buffers are reused: what they saw must not follow into the next.
        for n in [3usize, 40] {
            let obj: String = (0..n).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>().join(",");
            let body = format!("[{{{obj}}},{{{obj},\"x\":{{{obj}}}}},{{{obj}}}]");
            assert!(scan(JsonLimits::default(), body.as_bytes()).is_ok(), "{n}");
            let bad = format!("[{{{obj}}},{{{obj},\"k1\":0}}]");
            let v = scan(JsonLimits::default(), bad.as_bytes()).unwrap_err();
            assert_eq!((v.fault, v.pointer), (JsonFault::DuplicateKey, "/1/k1".to_string()), "{n}");
        }
    }

    #[test]
    fn hostile_bodies_stop_early() {
        let mut s = JsonScanner::new(JsonLimits::default());
        // Ten thousand levels: refused at level 33, whatever follows.
        let deep = "[".repeat(10_000);
        assert_eq!(s.feed(deep.as_bytes()).map_err(|v| v.fault), Err(JsonFault::Depth));
        // Later chunks keep the verdict.
        assert!(s.feed(b"]").is_err());
        assert!(s.finish().is_err());
    }
}
