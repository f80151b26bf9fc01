//! `multipart/form-data` bodies (RFC 7578) split into their parts, for every check that reads
//! them (OpenAPI part limits, method overrides), so there is one reading of where a part ends.

/// Why a body is not a well-formed multipart body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultipartError {
    /// The first line is not a delimiter (`--` and 1 to 70 characters).
    NotMultipart,
    /// No close delimiter after the last part.
    Unterminated,
}

impl MultipartError {
    /// The message for a problem's `errors` entry.
    pub fn message(self) -> &'static str {
        match self {
            MultipartError::NotMultipart => "the body is not multipart/form-data",
            MultipartError::Unterminated => "the multipart body is not terminated",
        }
    }
}

/// One part: its header block and its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    /// The part's bytes between its delimiters (headers, blank line, content).
    pub raw: &'a [u8],
}

impl<'a> Part<'a> {
    /// The header block (without the blank line), empty when the part has none.
    pub fn headers(&self) -> &'a [u8] {
        let raw = self.raw.strip_prefix(b"\r\n").unwrap_or(self.raw);
        match find(raw, b"\r\n\r\n") {
            Some(i) => raw.get(..i).unwrap_or_default(),
            None => raw,
        }
    }

    /// The content after the blank line.
    pub fn content(&self) -> &'a [u8] {
        let raw = self.raw.strip_prefix(b"\r\n").unwrap_or(self.raw);
        find(raw, b"\r\n\r\n").and_then(|i| raw.get(i + 4..)).unwrap_or_default()
    }

    /// The `name` parameter of its `Content-Disposition` header, as sent (quotes removed).
    pub fn field_name(&self) -> Option<&'a [u8]> {
        let headers = self.headers();
        let line = headers.split(|&b| b == b'\n').find(|l| {
            l.len() > 20 && l.get(..20).is_some_and(|n| n.eq_ignore_ascii_case(b"content-disposition:"))
        })?;
        line.split(|&b| b == b';').skip(1).find_map(|param| {
            let param = param.trim_ascii();
            let (key, value) = param.split_at(param.iter().position(|&b| b == b'=')?);
            key.trim_ascii().eq_ignore_ascii_case(b"name").then(|| {
                let v = value.get(1..).unwrap_or_default().trim_ascii();
                v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v)
            })
        })
    }
}

/// The parts of a multipart body, in order, read one at a time (a caller that stops early,
/// at a part limit or at the field it looks for, reads no further). The delimiter is the
/// body's first line, so the `boundary` of its `Content-Type` need not be kept.
pub fn parts(bytes: &[u8]) -> Parts<'_> {
    let line_end = find(bytes, b"\r\n");
    match line_end.and_then(|e| bytes.get(..e)) {
        Some(d) if d.starts_with(b"--") && d.len() > 2 && d.len() <= 72 => {
            let mut sep = b"\r\n".to_vec();
            sep.extend_from_slice(d);
            Parts { rest: bytes.get(d.len()..).unwrap_or_default(), sep: Some(sep), not_multipart: false }
        }
        _ => Parts { rest: &[], sep: None, not_multipart: true },
    }
}

/// The iterator [`parts`] returns: each item a part, or the error that ends the body.
#[derive(Debug)]
pub struct Parts<'a> {
    rest: &'a [u8],
    /// `CRLF` and the delimiter; `None` once done.
    sep: Option<Vec<u8>>,
    /// The body has no delimiter line: the first item is that error.
    not_multipart: bool,
}

impl<'a> Iterator for Parts<'a> {
    type Item = Result<Part<'a>, MultipartError>;

    fn next(&mut self) -> Option<Self::Item> {
        if std::mem::take(&mut self.not_multipart) {
            return Some(Err(MultipartError::NotMultipart));
        }
        let sep = self.sep.as_ref()?;
        if self.rest.starts_with(b"--") {
            self.sep = None; // the close delimiter
            self.rest = &[];
            return None;
        }
        let Some(end) = find(self.rest, sep) else {
            self.sep = None;
            self.rest = &[];
            return Some(Err(MultipartError::Unterminated));
        };
        let part = Part { raw: self.rest.get(..end).unwrap_or_default() };
        self.rest = self.rest.get(end + sep.len()..).unwrap_or_default();
        Some(Ok(part))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parts_and_reads_their_names() {
        let body = b"--xyz\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--xyz\r\n\
content-disposition: form-data; filename=\"a.txt\"; NAME=file\r\nContent-Type: text/plain\r\n\r\nhi\r\n\r\n--xyz--\r\n";
        let p: Vec<Part<'_>> = parts(body).collect::<Result<_, _>>().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].field_name(), Some(&b"_method"[..]));
        assert_eq!(p[0].content(), b"DELETE");
        assert_eq!(p[1].field_name(), Some(&b"file"[..]));
        assert_eq!(p[1].content(), b"hi\r\n");
        assert_eq!(parts(b"hello").collect::<Vec<_>>(), [Err(MultipartError::NotMultipart)]);
        assert_eq!(parts(b"").collect::<Vec<_>>(), [Err(MultipartError::NotMultipart)]);
        assert_eq!(parts(b"--xyz\r\nabc").collect::<Vec<_>>(), [Err(MultipartError::Unterminated)]);
        // A caller that stops early reads no further than it went.
        let mut many = b"--b\r\n".to_vec();
        for _ in 0..1000 {
            many.extend_from_slice(b"x\r\n--b\r\n");
        }
        assert_eq!(parts(&many).take(3).filter(Result::is_ok).count(), 3);
    }
}
