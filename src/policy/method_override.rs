//! Method overrides: a request that names another method than the one it was sent with.
//!
//! Frameworks with override support run the named method instead (Express `method-override`,
//! Rails' `Rack::MethodOverride`, Laravel and Symfony, ASP.NET Core's `UseHttpMethodOverride`),
//! past every method rule that judged the request. api-guard refuses an override that differs
//! from the method sent: in the headers those frameworks read, in a `_method` query parameter,
//! and in a `_method` field of a `POST` form body (the only method and bodies Rails, Laravel,
//! Symfony and ASP.NET read it from).

use super::media;
use super::multipart;
use super::path::percent_decode;

/// Headers frameworks read as a method override (names lower-case).
pub const HEADERS: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

/// The form parameter (and query parameter) frameworks read as a method override.
pub const FIELD: &[u8] = b"_method";

/// Where an override was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// In a header.
    Header,
    /// In a `_method` query parameter.
    Query,
    /// In a `_method` field of a form body.
    Form,
}

impl Found {
    /// Short stable name, for the denial's log line.
    pub fn name(self) -> &'static str {
        match self {
            Found::Header => "header",
            Found::Query => "query",
            Found::Form => "form",
        }
    }
}

/// A form body whose fields an override may hide in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `application/x-www-form-urlencoded`.
    UrlEncoded,
    /// `multipart/form-data`.
    Multipart,
}

fn differs(value: &[u8], sent: &[u8]) -> bool {
    !value.trim_ascii().eq_ignore_ascii_case(sent)
}

/// An override in the request head (headers, then the query) naming another method than
/// `sent`.
pub fn in_head(headers: &[(String, Vec<u8>)], sent: &[u8], query: &str) -> Option<Found> {
    if headers.iter().any(|(n, v)| HEADERS.contains(&n.as_str()) && differs(v, sent)) {
        return Some(Found::Header);
    }
    let in_query = !query.is_empty()
        && query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .any(|(k, v)| percent_decode(k, true) == FIELD && differs(&percent_decode(v, true), sent));
    in_query.then_some(Found::Query)
}

/// The form kind whose body must be read for an override: `POST` with a form media type.
pub fn form_of(method: &[u8], content_type: Option<&[u8]>) -> Option<Form> {
    if method != b"POST" {
        return None;
    }
    match content_type.and_then(media::essence)?.as_str() {
        "application/x-www-form-urlencoded" => Some(Form::UrlEncoded),
        "multipart/form-data" => Some(Form::Multipart),
        _ => None,
    }
}

/// Whether a complete `POST` form body carries a `_method` other than `POST`. In a multipart
/// body that cannot be split from its first line (a preamble, which RFC 2046 allows and Rack
/// skips, or no structure at all), any part header naming `_method` counts as one.
pub fn in_form(form: Form, body: &[u8]) -> bool {
    match form {
        Form::UrlEncoded => body.split(|&b| b == b'&').any(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (pair.get(..i).unwrap_or_default(), pair.get(i + 1..).unwrap_or_default()),
                None => (pair, &b""[..]),
            };
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            // No spelling of `_method` is longer than every byte escaped.
            k.len() <= FIELD.len() * 3
                && percent_decode(&text(k), true) == FIELD
                && differs(&percent_decode(&text(v), true), b"POST")
        }),
        Form::Multipart => {
            let mut unsplit = false;
            let named = multipart::parts(body).any(|p| match p {
                Ok(p) => p.field_name() == Some(FIELD) && differs(p.content(), b"POST"),
                Err(_) => {
                    unsplit = true;
                    false
                }
            });
            named || (unsplit && names_field_anywhere(body))
        }
    }
}

/// Whether any `Content-Disposition` header in `body` names the override field.
fn names_field_anywhere(body: &[u8]) -> bool {
    const HEADER: &[u8] = b"content-disposition:";
    (0..body.len())
        .filter(|&i| body.get(i..i + HEADER.len()).is_some_and(|h| h.eq_ignore_ascii_case(HEADER)))
        .any(|i| multipart::Part { raw: body.get(i..).unwrap_or_default() }.field_name() == Some(FIELD))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn head_overrides() {
        assert_eq!(in_head(&h(&[("x-http-method-override", "DELETE")]), b"POST", ""), Some(Found::Header));
        assert_eq!(in_head(&h(&[("x-http-method", " post ")]), b"POST", ""), None, "the same method");
        assert_eq!(in_head(&[], b"POST", "a=1&%5Fmethod=delete"), Some(Found::Query));
        assert_eq!(in_head(&[], b"GET", "_method=GET&_methodx=PUT"), None);
    }

    #[test]
    fn form_overrides() {
        assert_eq!(
            form_of(b"POST", Some(b"application/x-www-form-urlencoded; charset=utf-8")),
            Some(Form::UrlEncoded)
        );
        assert_eq!(form_of(b"POST", Some(b"Multipart/Form-Data; boundary=x")), Some(Form::Multipart));
        assert_eq!(
            form_of(b"PUT", Some(b"application/x-www-form-urlencoded")),
            None,
            "only POST is overridden"
        );
        assert_eq!(form_of(b"POST", Some(b"application/json")), None);
        assert!(in_form(Form::UrlEncoded, b"name=a&_method=DELETE"));
        assert!(in_form(Form::UrlEncoded, b"%5fmethod=patch"));
        assert!(in_form(Form::UrlEncoded, b"_method=PUT&x"));
        assert!(!in_form(Form::UrlEncoded, b"_method=post&note=_method%3DDELETE"));
        assert!(!in_form(Form::UrlEncoded, b"name=_method&x=DELETE"));
        let mp = |name: &str, value: &str| {
            format!("--b\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n--b--\r\n")
        };
        assert!(in_form(Form::Multipart, mp("_method", "DELETE").as_bytes()));
        assert!(!in_form(Form::Multipart, mp("_method", "POST").as_bytes()));
        assert!(!in_form(Form::Multipart, mp("comment", "_method=DELETE").as_bytes()));
        assert!(
            !in_form(Form::Multipart, b"not multipart"),
            "no field in it: the schema's refusal, not this one"
        );
        let preamble = format!("ignored\r\n{}", mp("_method", "DELETE"));
        assert!(in_form(Form::Multipart, preamble.as_bytes()), "a preamble does not hide a field");
    }
}
