//! What is checked in a request body, and the state kept while it arrives.
//!
//! The head decision yields a [`BodyCheck`]: the size limit always; the JSON shape limits when
//! the body is JSON; and a validation target when an API description has a schema for it. A
//! [`BodyInspector`] then follows the body chunk by chunk: it counts, scans JSON as it goes
//! (so a hostile body is refused at its first bad byte), and says whether the host must keep
//! the whole body for a final validation.

use super::denial::{Denial, ProblemError, Reason};
use super::json_limits::{JsonLimits, JsonScanner, JsonViolation};
use super::limits::BodyCounter;
use super::method_override::{self, Form};

/// Which operation and media type a body is validated against at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTarget {
    /// Index of the operation in the compiled API description.
    pub operation: usize,
    /// Index of the media type entry in that operation's request body.
    pub media: usize,
}

/// How the body of an admitted request is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyCheck {
    /// Largest body allowed.
    pub limit: u64,
    /// Declared length (already checked against the limit), if any.
    pub declared: Option<u64>,
    /// JSON shape limits, when the body is JSON.
    pub json: Option<JsonLimits>,
    /// The whole body is validated against this when it is complete.
    pub validate: Option<BodyTarget>,
    /// A `POST` form, read whole for a `_method` field naming another method.
    pub form_override: Option<Form>,
}

impl BodyCheck {
    /// Whether the host must hand over the body's bytes (not just its size).
    pub fn needs_bytes(&self) -> bool {
        self.json.is_some() || self.needs_whole()
    }

    /// Whether the host must buffer the whole body before it may go on.
    pub fn needs_whole(&self) -> bool {
        self.validate.is_some() || self.form_override.is_some()
    }
}

/// Follows one body as it arrives.
#[derive(Debug)]
pub struct BodyInspector {
    counter: BodyCounter,
    scanner: Option<JsonScanner>,
    form_override: Option<Form>,
    /// Bytes handed to [`BodyInspector::feed`] so far.
    fed: u64,
    /// The body so far, kept when a final validation needs it (so the host reads each byte
    /// once).
    kept: Option<Vec<u8>>,
}

/// The denial for a JSON violation, pointing into the body.
pub fn json_denial(v: &JsonViolation) -> Denial {
    Denial::with_errors(
        Reason::InvalidJson,
        vec![ProblemError {
            pointer: format!("/body{}", v.pointer),
            keyword: v.fault.keyword().to_string(),
            message: v.fault.message().to_string(),
        }],
    )
}

impl BodyInspector {
    /// An inspector for a body checked by `check`.
    pub fn new(check: &BodyCheck) -> BodyInspector {
        BodyInspector {
            counter: BodyCounter::new(check.limit),
            scanner: check.json.map(JsonScanner::new),
            form_override: check.form_override,
            fed: 0,
            kept: check.needs_whole().then(Vec::new),
        }
    }

    /// Counts a chunk of `len` bytes (hosts that report each chunk).
    pub fn add(&mut self, len: u64) -> Result<(), Denial> {
        self.counter.add(len)
    }

    /// Sets the total so far (hosts that report the buffered size).
    pub fn set_total(&mut self, total: u64) -> Result<(), Denial> {
        self.counter.set_total(total)
    }

    /// Bytes already read through [`BodyInspector::feed`]: where the next read starts in a
    /// buffered body.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    /// Reads the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Denial> {
        self.fed = self.fed.saturating_add(bytes.len() as u64);
        if let Some(k) = &mut self.kept {
            k.extend_from_slice(bytes);
        }
        match &mut self.scanner {
            Some(s) => s.feed(bytes).map_err(|v| json_denial(&v)),
            None => Ok(()),
        }
    }

    /// The whole body, when it was kept for validation.
    pub fn kept(&self) -> Option<&[u8]> {
        self.kept.as_deref()
    }

    /// The body is complete.
    pub fn finish(&mut self) -> Result<(), Denial> {
        if let Some(s) = &mut self.scanner {
            s.finish().map_err(|v| json_denial(&v))?;
        }
        if let (Some(form), Some(body)) = (self.form_override, &self.kept) {
            if method_override::in_form(form, body) {
                return Err(Denial {
                    cause: Some(method_override::Found::Form.name()),
                    ..Denial::new(Reason::MethodOverride)
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_scans_and_points_into_the_body() {
        let check = BodyCheck {
            limit: 100,
            declared: None,
            json: Some(JsonLimits::default()),
            validate: None,
            form_override: None,
        };
        let mut b = BodyInspector::new(&check);
        assert!(b.feed(br#"{"a":[1,"#).is_ok());
        let d = b.feed(br#"tru]}"#).unwrap_err();
        assert_eq!(d.reason, Reason::InvalidJson);
        assert_eq!(d.errors[0].pointer, "/body/a/1");
        assert_eq!(d.errors[0].keyword, "json");

        let mut b = BodyInspector::new(&check);
        assert!(b.feed(b"{}").is_ok());
        assert!(b.finish().is_ok());
        assert_eq!(b.fed(), 2);
        assert_eq!(b.add(101).unwrap_err().reason, Reason::BodyTooLarge);

        let mut b = BodyInspector::new(&check);
        assert!(b.feed(b"{").is_ok());
        assert_eq!(b.finish().unwrap_err().reason, Reason::InvalidJson);
        assert!(!check.needs_whole() && check.needs_bytes());
    }

    #[test]
    fn a_post_form_is_read_whole_for_an_override() {
        let check = BodyCheck {
            limit: 100,
            declared: None,
            json: None,
            validate: None,
            form_override: Some(Form::UrlEncoded),
        };
        assert!(check.needs_whole());
        let mut b = BodyInspector::new(&check);
        assert!(b.feed(b"a=1&_meth").is_ok());
        assert!(b.feed(b"od=DELETE").is_ok(), "judged when whole, wherever a chunk ends");
        let d = b.finish().unwrap_err();
        assert_eq!((d.reason, d.cause), (Reason::MethodOverride, Some("form")));
        let mut b = BodyInspector::new(&check);
        assert!(b.feed(b"a=1&_method=POST").is_ok());
        assert!(b.finish().is_ok());
    }
}
