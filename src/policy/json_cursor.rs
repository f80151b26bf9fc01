//! A cursor over JSON text: the grammar (RFC 8259, with serde_json's limits) read piece by
//! piece, for the passes that judge or copy a body without building a tree
//! ([`super::json_rewrite`], [`super::openapi::quick`]).

use std::borrow::Cow;

/// Deepest nesting accepted (serde_json's own limit).
pub(crate) const MAX_DEPTH: usize = 128;

/// The body is not JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson;

pub(crate) struct Cursor<'s> {
    /// The body, known to be UTF-8 (strings are sliced from it without checking again).
    pub(crate) text: &'s str,
    pub(crate) s: &'s [u8],
    pub(crate) i: usize,
}

/// The high bit of each byte of `word` (little-endian) that is a quote, a backslash or below
/// 0x20. Bytes above the first such byte may be flagged falsely (a borrow runs upward), so
/// only the lowest flag is to be read; it is exact.
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    zero(word ^ (ONES * u64::from(b'"')))
        | zero(word ^ (ONES * u64::from(b'\\')))
        | (word.wrapping_sub(ONES * 0x20) & !word & HIGH)
}

/// How many bytes at the start of `s` are printable ASCII other than a quote or a backslash
/// (what a string holds with no escape, no control character and no multi-byte character),
/// eight at a time.
pub(crate) fn ascii_run(s: &[u8]) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(word) = s.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        let word = u64::from_le_bytes(word);
        // A byte of 0x80 or more is flagged exactly by its own high bit, so the lowest flag
        // of the two is still the first byte to stop at.
        let found = special_bytes(word) | (word & HIGH);
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = s.get(i..).unwrap_or(&[]);
    i + rest.iter().take_while(|&&c| (0x20..0x80).contains(&c) && c != b'"' && c != b'\\').count()
}

impl<'s> Cursor<'s> {
    /// A cursor at the start of `text`.
    pub(crate) fn new(text: &'s str) -> Cursor<'s> {
        Cursor { text, s: text.as_bytes(), i: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// After an entry of a container closed by `close`: whether another entry follows (a
    /// comma), or the container ends (`close`); anything else is not JSON.
    pub(crate) fn more(&mut self, close: u8) -> Result<bool, NotJson> {
        self.ws();
        if self.eat(b',') {
            Ok(true)
        } else if self.eat(close) {
            Ok(false)
        } else {
            Err(NotJson)
        }
    }

    /// Skips (and validates) one value.
    pub(crate) fn skip(&mut self, depth: usize) -> Result<(), NotJson> {
        if depth > MAX_DEPTH {
            return Err(NotJson);
        }
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.eat(b'}') {
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.string()?;
                    self.ws();
                    if !self.eat(b':') {
                        return Err(NotJson);
                    }
                    self.ws();
                    self.skip(depth + 1)?;
                    if !self.more(b'}')? {
                        return Ok(());
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.skip(depth + 1)?;
                    if !self.more(b']')? {
                        return Ok(());
                    }
                }
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(NotJson),
        }
    }

    pub(crate) fn literal(&mut self, word: &[u8]) -> Result<(), NotJson> {
        if self.s.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    pub(crate) fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    /// RFC 8259 number grammar, and finite as a double (as serde_json requires: `1e400` is
    /// refused, not passed on to clients that would read infinity).
    pub(crate) fn number(&mut self) -> Result<(), NotJson> {
        let start = self.i;
        self.eat(b'-');
        if !self.eat(b'0') && self.digits() == 0 {
            return Err(NotJson);
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(NotJson);
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(NotJson);
            }
            return self.finite(start);
        }
        if self.i - start > 300 {
            return self.finite(start);
        }
        Ok(())
    }

    pub(crate) fn finite(&self, start: usize) -> Result<(), NotJson> {
        let text = std::str::from_utf8(self.s.get(start..self.i).ok_or(NotJson)?).map_err(|_| NotJson)?;
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(()),
            _ => Err(NotJson),
        }
    }

    /// A string (the cursor on its opening quote), decoded.
    pub(crate) fn string(&mut self) -> Result<Cow<'s, str>, NotJson> {
        if !self.eat(b'"') {
            return Err(NotJson);
        }
        let start = self.i;
        self.plain();
        match self.peek() {
            Some(b'"') => {
                // Both ends sit next to an ASCII quote, so they are character boundaries.
                let raw = self.text.get(start..self.i).ok_or(NotJson)?;
                self.i += 1;
                return Ok(Cow::Borrowed(raw));
            }
            Some(b'\\') => {}
            _ => return Err(NotJson),
        }
        // Escapes: decode into a new string.
        let mut owned = String::from(self.text.get(start..self.i).ok_or(NotJson)?);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(owned));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let ch = super::json::unescape(self.s, &mut self.i).map_err(|_| NotJson)?;
                    owned.push(ch);
                }
                Some(0..=0x1f) | None => return Err(NotJson),
                Some(_) => {
                    // Copy a run of plain bytes (whole UTF-8 sequences: the run ends at ASCII).
                    let run = self.i;
                    self.plain();
                    owned.push_str(self.text.get(run..self.i).ok_or(NotJson)?);
                }
            }
        }
    }

    /// Moves past the bytes a string holds as they are: up to a quote, a backslash, a control
    /// character or the end. Eight bytes at a time while none of them is one of those (most
    /// of a body's bytes are in its strings).
    pub(crate) fn plain(&mut self) {
        while let Some(word) = self.s.get(self.i..self.i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
            let found = special_bytes(u64::from_le_bytes(word));
            if found != 0 {
                self.i += (found.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
        let rest = self.s.get(self.i..).unwrap_or(&[]);
        self.i += rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(rest.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_run_stops_where_the_byte_scan_does() {
        let slow = |s: &[u8]| {
            s.iter().take_while(|&&c| (0x20..0x80).contains(&c) && c != b'"' && c != b'\\').count()
        };
        for special in [b'"', b'\\', 0x00, 0x1f, 0x80, 0xc3, 0xff] {
            for at in 0..20 {
                for filler in (0x20u8..0x80).filter(|b| ![b'"', b'\\'].contains(b)) {
                    let mut s = vec![filler; 24];
                    s[at] = special;
                    assert_eq!(ascii_run(&s), at, "{special:#x} at {at} among {filler:#x}");
                    assert_eq!(ascii_run(&s[..at + 1]), slow(&s[..at + 1]));
                }
            }
        }
        assert_eq!(ascii_run(b"abcdefghijklmnopq"), 17);
        assert_eq!(ascii_run(b""), 0);
    }

    #[test]
    fn the_eight_byte_scan_stops_where_the_byte_scan_does() {
        // Every position of every special byte, with every other byte value around it.
        for special in [b'"', b'\\', 0x00, 0x1f] {
            for at in 0..20 {
                for filler in (0x20u8..=0xff).filter(|b| ![b'"', b'\\'].contains(b)) {
                    let mut s = vec![filler; 24];
                    s[at] = special;
                    let mut c = Cursor { s: &s, text: "", i: 0 };
                    c.plain();
                    assert_eq!(c.i, at, "{special:#x} at {at} among {filler:#x}");
                }
            }
        }
        let mut c = Cursor { s: b"abcdefghijklmnopq", text: "", i: 3 };
        c.plain();
        assert_eq!(c.i, 17);
    }
}
