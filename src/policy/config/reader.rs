//! Reading the configuration's JSON text straight into its types, naming the field of every
//! error.
//!
//! Why not `serde_json` and serde's derived deserialisers: each derived type brings a visitor,
//! a field identifier and an inlined copy of every field's parsing, which together were about a
//! tenth of the module's code, compiled by TurboFan in every Envoy before the first request.
//! Here the configuration's types implement [`Read`] from tables of their members' names
//! (`config/tables.rs`): one small function per type, with the object's grammar, its unknown,
//! repeated and missing members, and the path of a failure handled once, by plain functions
//! ([`Reader::fields`], [`Reader::tag`], [`Reader::choice`]). Scalars, JSON values and the
//! OpenAPI document are still read through serde ([`Reader`] is a `Deserializer`), so their
//! messages are serde's own. The path of a failure is built as the error travels out: each
//! object member and list element it leaves adds its name or index. A configuration is read
//! once per load, so this reader is made to be small, not fast (it still reads GitHub's 5.7 MB
//! description in about the time `serde_json` takes).
//!
//! It reads JSON as `serde_json::from_str` does (RFC 8259; nesting at most 128 deep; a number
//! is read as a `u64`, else an `i64`, else an `f64`; a value nobody reads is checked for its
//! grammar only; nothing may follow the document), and the types as serde's derive does (the
//! same members refused for the same reasons, in the same order, with serde's messages), so
//! the configuration's errors read as before; `tests/config_reader.rs` holds it to that on
//! 20,000 mutated policies, and `tables::tests` holds every table to its type's derive. Three
//! constructs serde would also take are refused, since nobody means them in a configuration:
//! an object (or an internally tagged enum) given as a list of its field values, an enum
//! written as `{"name": null}` (or as a number, which serde_json calls a syntax error; here
//! the field and its choices are named), and members given to a kind of an internally tagged
//! enum that has none (`{"type": "deny", "providers": [...]}`, which serde passes over). And a
//! kind's field refused is named by its own path, where serde names only the enum.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, Expected, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::forward_to_deserialize_any;
use serde::Deserialize;

/// Deepest nesting of lists and objects (serde_json's limit too).
const MAX_DEPTH: u32 = 128;

/// Reads one JSON value of type `T` from all of `text`, through serde (the tests compare
/// the two ways).
#[cfg(test)]
pub fn from_str<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, Error> {
    let mut reader = Reader { text, pos: 0, depth: 0 };
    let value = T::deserialize(&mut reader).map_err(|e| e.placed(reader.pos))?;
    reader.end()?;
    Ok(value)
}

/// Reads one value of a configuration type from all of `text`.
pub fn read<T: Read>(text: &str) -> Result<T, Error> {
    let mut reader = Reader { text, pos: 0, depth: 0 };
    let value = T::read(&mut reader).map_err(|e| e.placed(reader.pos))?;
    reader.end()?;
    Ok(value)
}

/// A type the configuration is made of, read straight from the text.
///
/// The configuration's objects and choices implement it from tables of their members' names
/// (`config/tables.rs`): one plain function per type, where serde's derived code would make a
/// visitor, a field identifier and a copy of every field's parsing per type. Scalars and JSON
/// values are read through serde ([`Reader`] is a `Deserializer`), so their messages are
/// serde's own.
pub trait Read: Sized {
    /// The value at the reader's position.
    fn read(r: &mut Reader<'_>) -> Result<Self, Error>;

    /// The value of a member the object left out: serde's rule, `None` for an `Option` and an
    /// error naming the member for anything else (members with a default say so in their
    /// table instead).
    #[cold]
    fn missing(name: &'static str) -> Result<Self, Error> {
        Err(de::Error::missing_field(name))
    }
}

macro_rules! read_through_serde {
    ($($t:ty),*) => {
        $(impl Read for $t {
            #[inline(never)]
            fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
                <$t>::deserialize(r)
            }
        })*
    };
}

read_through_serde!(String, bool, u16, u32, u64, usize, serde_json::Value);

impl<T: Read> Read for Option<T> {
    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        r.skip_whitespace();
        match r.peek() {
            Some(b'n') => r.word("null").map(|()| None),
            _ => T::read(r).map(Some),
        }
    }

    fn missing(_: &'static str) -> Result<Self, Error> {
        Ok(None)
    }
}

impl<T: Read> Read for Vec<T> {
    #[inline(never)]
    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        r.open(b'[', &"a sequence")?;
        let mut out = Vec::new();
        while r.more(b']', out.is_empty())? {
            let at = r.pos;
            match T::read(r) {
                Ok(value) => out.push(value),
                Err(e) => return Err(e.within(Segment::Index(out.len()), at)),
            }
        }
        r.close(b']')?;
        Ok(out)
    }
}

impl<T: Read> Read for std::collections::BTreeMap<String, T> {
    #[inline(never)]
    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        r.open(b'{', &"a map")?;
        let mut out = std::collections::BTreeMap::new();
        let mut first = true;
        while r.more(b'}', first)? {
            first = false;
            let (mut key, _) = r.key()?;
            r.colon()?;
            let at = r.pos;
            match T::read(r) {
                Ok(value) => {
                    out.insert(key.into_owned(), value);
                }
                Err(e) => return Err(e.within_member(&mut key, at)),
            }
        }
        r.close(b'}')?;
        Ok(out)
    }
}

/// The value of a member: what the object gave, else what it means to leave it out.
pub fn need<T: Read>(value: Option<T>, name: &'static str) -> Result<T, Error> {
    match value {
        Some(value) => Ok(value),
        None => T::missing(name),
    }
}

/// One step of the path to a failure.
#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Why a document could not be read: a syntax error (where in the text), or a value its type
/// refused (which field, and where). Boxed, so that every `Result` of the generic shims stays
/// one word and moving it costs no copying code.
#[derive(Debug)]
pub struct Error(Box<Fault>);

#[derive(Debug)]
struct Fault {
    message: String,
    /// Innermost first: each level the error leaves pushes its own step.
    path: Vec<Segment>,
    /// Byte offset where the reader saw it (`usize::MAX` until then).
    at: usize,
    syntax: bool,
}

impl Error {
    fn new(message: String, at: usize, syntax: bool) -> Error {
        Error(Box::new(Fault { message, path: Vec::new(), at, syntax }))
    }

    fn syntax(message: &str, at: usize) -> Error {
        Error::new(message.to_string(), at, true)
    }

    /// Not JSON at all: there is no field to name, only a place in the text.
    pub fn is_syntax(&self) -> bool {
        self.0.syntax
    }

    /// serde's message (`unknown field ...`, `invalid type: ...`), or the syntax error.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The field, as `routes[0].auth.providers[1]`, or `.` for the document itself.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for segment in self.0.path.iter().rev() {
            match segment {
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        if out.is_empty() {
            out.push('.');
        }
        out
    }

    /// Line and column (both from 1) of where it was seen in `text`.
    pub fn position(&self, text: &str) -> (usize, usize) {
        let before = text.get(..self.0.at.min(text.len())).unwrap_or(text);
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// Where the reader first saw the error, if nothing deeper said.
    #[cold]
    #[inline(never)]
    fn placed(mut self, at: usize) -> Error {
        if self.0.at == usize::MAX {
            self.0.at = at;
        }
        self
    }

    /// The error, leaving the member named `key` that began at `at`.
    #[cold]
    #[inline(never)]
    fn within_member(self, key: &mut Cow<'_, str>, at: usize) -> Error {
        let key = std::mem::take(key).into_owned();
        self.within(Segment::Key(key), at)
    }

    /// The error, leaving the member or element `segment` that began at `at`.
    #[cold]
    #[inline(never)]
    fn within(mut self, segment: Segment, at: usize) -> Error {
        if !self.0.syntax {
            self.0.path.push(segment);
        }
        self.placed(at)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    #[cold]
    fn custom<T: fmt::Display>(message: T) -> Error {
        Error::new(message.to_string(), usize::MAX, false)
    }
}

/// The first token of a value. A list or object token has consumed its bracket.
enum Token<'de> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'de, str>),
    Seq,
    Map,
}

impl Token<'_> {
    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Token::Null => Unexpected::Unit,
            Token::Bool(b) => Unexpected::Bool(*b),
            Token::U64(n) => Unexpected::Unsigned(*n),
            Token::I64(n) => Unexpected::Signed(*n),
            Token::F64(n) => Unexpected::Float(*n),
            Token::Str(s) => Unexpected::Str(s),
            Token::Seq => Unexpected::Seq,
            Token::Map => Unexpected::Map,
        }
    }
}

/// A position in the text. Everything that parses is a plain method here; the `Deserializer`
/// methods below only pick the visitor's method for a token.
pub struct Reader<'de> {
    text: &'de str,
    pos: usize,
    depth: u32,
}

impl<'de> Reader<'de> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    #[inline(never)]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    #[cold]
    fn error(&self, message: &str) -> Error {
        Error::syntax(message, self.pos)
    }

    #[cold]
    fn invalid(&self, token: &Token<'_>, expected: &dyn Expected) -> Error {
        de::Error::invalid_type(token.unexpected(), expected)
    }

    /// After the value: only whitespace may follow.
    #[inline(never)]
    fn end(&mut self) -> Result<(), Error> {
        self.skip_whitespace();
        match self.pos < self.text.len() {
            true => Err(self.error("trailing characters")),
            false => Ok(()),
        }
    }

    /// Reads the first token of the next value.
    #[inline(never)]
    fn token(&mut self) -> Result<Token<'de>, Error> {
        self.skip_whitespace();
        match self.peek() {
            None => Err(self.error("EOF while parsing a value")),
            Some(b'n') => self.word("null").map(|()| Token::Null),
            Some(b't') => self.word("true").map(|()| Token::Bool(true)),
            Some(b'f') => self.word("false").map(|()| Token::Bool(false)),
            Some(b'"') => self.string().map(Token::Str),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(open @ (b'[' | b'{')) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.error("recursion limit exceeded"));
                }
                self.pos += 1;
                Ok(if open == b'[' { Token::Seq } else { Token::Map })
            }
            Some(_) => Err(self.error("expected value")),
        }
    }

    #[inline(never)]
    fn word(&mut self, word: &str) -> Result<(), Error> {
        match self.text.get(self.pos..).is_some_and(|rest| rest.starts_with(word)) {
            true => {
                self.pos += word.len();
                Ok(())
            }
            false => Err(self.error("expected ident")),
        }
    }

    /// A string, at its opening quote. Borrowed from the text unless it has escapes.
    #[inline(never)]
    fn string(&mut self) -> Result<Cow<'de, str>, Error> {
        let bytes = self.text.as_bytes();
        self.pos += 1;
        let mut run = self.pos;
        let mut owned: Option<String> = None;
        loop {
            match bytes.get(self.pos) {
                None => return Err(self.error("EOF while parsing a string")),
                Some(b'"') => {
                    // Quotes and backslashes are ASCII: the runs between them are whole UTF-8.
                    let tail = self.text.get(run..self.pos).unwrap_or_default();
                    self.pos += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(tail),
                        Some(mut s) => {
                            s.push_str(tail);
                            Cow::Owned(s)
                        }
                    });
                }
                Some(b'\\') => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(self.text.get(run..self.pos).unwrap_or_default());
                    self.pos += 1;
                    let c = self.escape()?;
                    s.push(c);
                    run = self.pos;
                }
                Some(0..=0x1f) => {
                    return Err(self.error("control character (\\u0000-\\u001F) found while parsing a string"))
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// The character of an escape, after its backslash.
    fn escape(&mut self) -> Result<char, Error> {
        let mut pos = self.pos;
        let decoded = crate::policy::json::unescape(self.text.as_bytes(), &mut pos);
        self.pos = pos;
        decoded.map_err(|message| self.error(message))
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number, as serde_json reads one: an integer is a `u64` (or, negative, an `i64`) when
    /// it fits, anything else an `f64`.
    #[inline(never)]
    fn number(&mut self) -> Result<Token<'de>, Error> {
        let start = self.pos;
        let float = self.number_text()?;
        let text = self.text.get(start..self.pos).unwrap_or_default();
        let negative = text.starts_with('-');
        if !float {
            match negative {
                // serde_json reads -0 as a float.
                true => match text.parse::<i64>() {
                    Ok(0) => return Ok(Token::F64(-0.0)),
                    Ok(n) => return Ok(Token::I64(n)),
                    Err(_) => {}
                },
                false => {
                    if let Ok(n) = text.parse::<u64>() {
                        return Ok(Token::U64(n));
                    }
                }
            }
        }
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Token::F64(n)),
            _ => Err(Error::syntax("number out of range", start)),
        }
    }

    /// Moves past a number's grammar; says whether it has a fraction or an exponent. (A value
    /// nobody reads is checked this far only, as serde_json does: `1e400` there is no error.)
    #[inline(never)]
    fn number_text(&mut self) -> Result<bool, Error> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.error("invalid number"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            float = true;
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            float = true;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        Ok(float)
    }

    /// Before the next element or member: whether there is one. `close` is `]` or `}`.
    #[inline(never)]
    fn more(&mut self, close: u8, first: bool) -> Result<bool, Error> {
        self.skip_whitespace();
        let (eof, expected) = match close {
            b']' => ("EOF while parsing a list", "expected `,` or `]`"),
            _ => ("EOF while parsing an object", "expected `,` or `}`"),
        };
        match self.peek() {
            None => Err(self.error(eof)),
            Some(b) if b == close => Ok(false),
            Some(_) if first => Ok(true),
            Some(b',') => {
                self.pos += 1;
                self.skip_whitespace();
                match self.peek() {
                    Some(b) if b == close => Err(self.error("trailing comma")),
                    _ => Ok(true),
                }
            }
            Some(_) => Err(self.error(expected)),
        }
    }

    /// A member's name; returns it and where it began. (Its colon is read with the value, as
    /// serde_json does, so a name refused is reported before a missing colon.)
    #[inline(never)]
    fn key(&mut self) -> Result<(Cow<'de, str>, usize), Error> {
        let at = self.pos;
        if self.peek() != Some(b'"') {
            return Err(self.error("key must be a string"));
        }
        let key = self.string()?;
        Ok((key, at))
    }

    #[inline(never)]
    fn colon(&mut self) -> Result<(), Error> {
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.error("expected `:`"));
        }
        self.pos += 1;
        Ok(())
    }

    /// The closing bracket of a list or object whose visitor has read all it wanted.
    #[inline(never)]
    fn close(&mut self, close: u8) -> Result<(), Error> {
        self.skip_whitespace();
        match self.peek() {
            Some(b) if b == close => {
                self.pos += 1;
                self.depth -= 1;
                Ok(())
            }
            None => Err(self.error("EOF while parsing a value")),
            Some(_) => Err(self.error("trailing characters")),
        }
    }

    /// Reads past a value nobody wants (`IgnoredAny`), checking that it is JSON.
    #[inline(never)]
    fn skip(&mut self) -> Result<(), Error> {
        self.skip_whitespace();
        if let Some(b'-' | b'0'..=b'9') = self.peek() {
            return self.number_text().map(|_| ());
        }
        let close = match self.token()? {
            Token::Seq => b']',
            Token::Map => b'}',
            _ => return Ok(()),
        };
        let mut first = true;
        while self.more(close, first)? {
            first = false;
            if close == b'}' {
                self.key()?;
                self.colon()?;
            }
            self.skip()?;
        }
        self.close(close)
    }

    /// The opening bracket of a list (`[`) or an object (`{`); anything else is a value of the
    /// wrong kind, refused in serde's words with what was `expected`.
    #[inline(never)]
    fn open(&mut self, bracket: u8, expected: &dyn Expected) -> Result<(), Error> {
        match (self.token()?, bracket) {
            (Token::Seq, b'[') | (Token::Map, b'{') => Ok(()),
            (token, _) => Err(self.invalid(&token, expected)),
        }
    }

    /// An object whose members are the fields `names` (serde's rules: an unknown or repeated
    /// member is refused, by name). `field(reader, i)` reads the value of `names[i]`. A member
    /// named `tag` is passed over: the kind of an internally tagged enum, read before.
    #[inline(never)]
    pub fn fields(
        &mut self,
        expected: &dyn Expected,
        names: &'static [&'static str],
        tag: Option<&str>,
        field: &mut dyn FnMut(&mut Reader<'de>, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.open(b'{', expected)?;
        let mut seen: u64 = 0;
        let mut first = true;
        while self.more(b'}', first)? {
            first = false;
            let (mut key, at) = self.key()?;
            let Some(index) = names.iter().position(|name| *name == key) else {
                if tag.is_some_and(|tag| tag == key) {
                    self.colon()?;
                    self.skip()?;
                    continue;
                }
                let e: Error = de::Error::unknown_field(&key, names);
                return Err(e.within_member(&mut key, at));
            };
            let bit = 1u64 << (index % 64);
            if seen & bit != 0 {
                return Err(de::Error::duplicate_field(names.get(index).copied().unwrap_or_default()));
            }
            seen |= bit;
            self.colon()?;
            let at = self.pos;
            field(self, index).map_err(|e| e.within_member(&mut key, at))?;
        }
        self.close(b'}')
    }

    /// Reads a member's value into its slot.
    pub fn slot<T: Read>(&mut self, slot: &mut Option<T>) -> Result<(), Error> {
        *slot = Some(T::read(self)?);
        Ok(())
    }

    /// One of `names` (an enum of plain choices), by its index.
    #[inline(never)]
    pub fn choice(&mut self, names: &'static [&'static str]) -> Result<usize, Error> {
        match self.token()? {
            Token::Str(name) => {
                names.iter().position(|n| *n == name).ok_or_else(|| de::Error::unknown_variant(&name, names))
            }
            token => Err(not_a_name(&token, names)),
        }
    }

    /// The kind of an internally tagged enum (`expected` is serde's name for it), by its index
    /// in `kinds`, read ahead from the object's member `"type"`; the reader is left where the
    /// object begins, for the kind's fields ([`Reader::fields`] with the tag passed over).
    /// Errors come in serde's order: serde reads the whole object before any of the kind's
    /// fields, so its grammar (and numbers too large to read) are refused first. A kind's
    /// field refused afterwards is named by its own path (`routes[0].auth.providers`), where
    /// serde, reading from its copy of the object, could name only the enum (`routes[0].auth`).
    #[inline(never)]
    pub fn tag(&mut self, expected: &dyn Expected, kinds: &'static [&'static str]) -> Result<usize, Error> {
        let (start, depth) = (self.pos, self.depth);
        self.open(b'{', expected)?;
        let mut kind = None;
        let mut first = true;
        while self.more(b'}', first)? {
            first = false;
            let (mut key, _) = self.key()?;
            if key != "type" {
                self.colon()?;
                serde_json::Value::deserialize(&mut *self)?;
                continue;
            }
            if kind.is_some() {
                return Err(de::Error::duplicate_field("type"));
            }
            self.colon()?;
            let at = self.pos;
            let found = match self.token() {
                Ok(Token::Str(name)) => kinds
                    .iter()
                    .position(|k| *k == name)
                    .ok_or_else(|| de::Error::unknown_variant(&name, kinds)),
                Ok(token) => Err(self.invalid(&token, &"variant identifier")),
                Err(e) => Err(e),
            };
            kind = Some(found.map_err(|e| e.within_member(&mut key, at))?);
        }
        self.close(b'}')?;
        let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        (self.pos, self.depth) = (start, depth);
        Ok(kind)
    }

    /// The visitor's method for a token of any kind.
    #[inline(never)]
    fn visit<V: Visitor<'de>>(&mut self, token: Token<'de>, visitor: V) -> Result<V::Value, Error> {
        match token {
            Token::Seq => {
                let value = visitor.visit_seq(Elements { reader: self, index: 0 })?;
                self.close(b']')?;
                Ok(value)
            }
            Token::Map => self.members(visitor),
            token => self.scalar(token, visitor),
        }
    }

    // Not inlined: each object's fields then stay a function of their own, which TurboFan
    // compiles in far less time than one function holding every nested object.
    #[inline(never)]
    fn members<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Error> {
        let value = visitor.visit_map(Members { reader: self, first: true, key: Cow::Borrowed("") })?;
        self.close(b'}')?;
        Ok(value)
    }

    /// The visitor's method for a token that is not a list or object (those are refused).
    fn scalar<V: Visitor<'de>>(&mut self, token: Token<'de>, visitor: V) -> Result<V::Value, Error> {
        match token {
            Token::Null => visitor.visit_unit(),
            Token::Bool(b) => visitor.visit_bool(b),
            Token::U64(n) => visitor.visit_u64(n),
            Token::I64(n) => visitor.visit_i64(n),
            Token::F64(n) => visitor.visit_f64(n),
            Token::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Token::Str(Cow::Owned(s)) => visitor.visit_string(s),
            Token::Seq | Token::Map => Err(self.invalid(&token, &visitor)),
        }
    }
}

impl<'de> Deserializer<'de> for &mut Reader<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let token = self.token()?;
        self.visit(token, visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.skip_whitespace();
        match self.peek() {
            Some(b'n') => {
                self.word("null")?;
                visitor.visit_none()
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.token()? {
            Token::Map => self.members(visitor),
            token => Err(self.invalid(&token, &visitor)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.token()? {
            token @ Token::Seq => self.visit(token, visitor),
            token => Err(self.invalid(&token, &visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.token()? {
            Token::Str(name) => visitor.visit_enum(StrDeserializer::<Error>::new(&name)),
            token => Err(not_a_name(&token, variants)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.skip()?;
        visitor.visit_unit()
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let token = self.token()?;
        self.scalar(token, visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let token = self.token()?;
        self.scalar(token, visitor)
    }

    /// Strings only, as serde_json reads them: an identifier visitor would also take a number
    /// as a variant's index (`"type": 0` naming the first kind of an internally tagged enum).
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.token()? {
            Token::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Token::Str(Cow::Owned(s)) => visitor.visit_string(s),
            token => Err(self.invalid(&token, &visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u128 f32 f64 bytes byte_buf unit unit_struct tuple tuple_struct
    }
}

/// An enum written as something other than one of its names.
#[cold]
fn not_a_name(token: &Token<'_>, variants: &[&str]) -> Error {
    let names: Vec<String> = variants.iter().map(|v| format!("`{v}`")).collect();
    de::Error::custom(format_args!(
        "invalid type: {}, expected one of {}",
        token.unexpected(),
        names.join(", ")
    ))
}

/// The elements of a list.
struct Elements<'a, 'de> {
    reader: &'a mut Reader<'de>,
    index: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        if !self.reader.more(b']', self.index == 0)? {
            return Ok(None);
        }
        let (index, at) = (self.index, self.reader.pos);
        self.index += 1;
        match seed.deserialize(&mut *self.reader) {
            Ok(value) => Ok(Some(value)),
            Err(e) => Err(e.within(Segment::Index(index), at)),
        }
    }
}

/// The members of an object.
struct Members<'a, 'de> {
    reader: &'a mut Reader<'de>,
    first: bool,
    /// The name of the member whose value is next.
    key: Cow<'de, str>,
}

impl<'de> MapAccess<'de> for Members<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        if !self.reader.more(b'}', self.first)? {
            return Ok(None);
        }
        self.first = false;
        let (mut key, at) = self.reader.key()?;
        match seed.deserialize(Name(&key)) {
            Ok(value) => {
                self.key = key;
                Ok(Some(value))
            }
            Err(e) => Err(e.within_member(&mut key, at)),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.reader.colon()?;
        let at = self.reader.pos;
        match seed.deserialize(&mut *self.reader) {
            Ok(value) => Ok(value),
            Err(e) => Err(e.within_member(&mut self.key, at)),
        }
    }
}

/// A member's name, read as a string (or as the name of an enum's variant).
struct Name<'a, 'de>(&'a Cow<'de, str>);

impl<'de> Deserializer<'de> for Name<'_, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Cow::Borrowed(s) => visitor.visit_borrowed_str(s),
            Cow::Owned(s) => visitor.visit_str(s),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(StrDeserializer::<Error>::new(self.0))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What serde_json reads, this reader reads the same; what it refuses, this refuses.
    #[test]
    fn reads_values_as_serde_json_does() {
        let cases = [
            r#"{"a":[1,-2,3.5,-0,1e3,18446744073709551615,18446744073709551616,-9223372036854775808,-9223372036854775809],"b":{"c":null,"d":true,"e":false}}"#,
            r#"  {"s":"\u00e9\ud83d\ude00\n\t\"\\\/x","": "", "dup":1, "dup":2}  "#,
            "[]",
            "[[],{},[{}]]",
            r#""just a string""#,
            "0",
            "-0.0e-0",
        ];
        for text in cases {
            let ours: Value = from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
        let refused = [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "01",
            "1.",
            "1e",
            "-",
            "+1",
            "nul",
            "tru",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\u12\"",
            "\"a\nb\"",
            "[1 2]",
            "{} x",
            "1e400",
            "\"abc",
            "[1]]",
        ];
        for text in refused {
            assert!(serde_json::from_str::<Value>(text).is_err(), "serde_json takes {text:?}");
            let e = from_str::<Value>(text).expect_err(text);
            assert!(e.is_syntax(), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_value_nobody_reads_is_checked_as_serde_json_checks_it() {
        // Grammar only: a number too large for an f64 is no error where it is left unread.
        assert!(from_str::<serde::de::IgnoredAny>(r#"{"a":[1e400,"x",{"b":null}]}"#).is_ok());
        assert!(serde_json::from_str::<serde::de::IgnoredAny>("[1e400]").is_ok());
        assert!(from_str::<Value>("[1e400]").unwrap_err().is_syntax());
        for bad in ["[01]", "[1.]", "{\"a\" 1}", "[\"\\q\"]"] {
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(bad).is_err(), "{bad}");
            assert!(from_str::<serde::de::IgnoredAny>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = from_str::<Value>(&deep).unwrap_err();
        assert_eq!(e.message(), "recursion limit exceeded");
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(from_str::<Value>(&ok).is_ok());
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert!(from_str::<serde::de::IgnoredAny>(&deep).is_err());
    }

    #[test]
    fn errors_carry_the_path_and_the_line() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Inner {
            n: u32,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            list: Vec<Inner>,
            map: std::collections::BTreeMap<String, Inner>,
        }
        let text = "{\"list\":[{\"n\":1},\n{\"n\":\"x\"}], \"map\":{}}";
        let e = from_str::<Outer>(text).unwrap_err();
        assert_eq!(e.path(), "list[1].n");
        assert_eq!(e.message(), "invalid type: string \"x\", expected u32");
        assert_eq!(e.position(text).0, 2);
        let e = from_str::<Outer>(r#"{"list":[],"map":{"a.b":{"m":1}}}"#).unwrap_err();
        assert_eq!(e.path(), "map.a.b.m");
        assert!(e.message().starts_with("unknown field `m`"), "{e}");
        let e = from_str::<Outer>(r#"{"list":[]}"#).unwrap_err();
        assert_eq!((e.path().as_str(), e.message()), (".", "missing field `map`"));
        let e = from_str::<Outer>(r#"{"list":[{"n":1}}"#).unwrap_err();
        assert!(e.is_syntax());
        assert_eq!(e.path(), ".");
    }
}
