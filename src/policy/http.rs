//! The ground floor of the core: HTTP as plain data, shared by every phase and by the host
//! layer (a request head, a header edit), so no module reaches up the layers for it.

/// The request head, as plain data.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// All request headers including pseudo-headers (`:method`, `:path`), names lower-case.
    pub headers: &'a [(String, Vec<u8>)],
    /// Whether the host said no body follows; `None` when the host cannot tell.
    pub end_of_stream: Option<bool>,
}

impl<'a> RequestHead<'a> {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// The first value of header `name` as text (`""` when absent or not UTF-8).
    pub fn header_str(&self, name: &str) -> &'a str {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok()).unwrap_or("")
    }
}

/// A change to a header map (request or response), applied by the host in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    /// Remove every value of this header.
    Remove(String),
    /// Set this header to the value.
    Set(String, String),
}

/// Applies `ops` in order to a header list (names lower-case): what the host's map holds after
/// the same edits one call at a time. `Set` replaces every value of the header.
pub fn apply_header_ops(headers: &mut Vec<(String, Vec<u8>)>, ops: &[HeaderOp]) {
    for op in ops {
        match op {
            HeaderOp::Remove(name) => headers.retain(|(n, _)| n != name),
            HeaderOp::Set(name, value) => match headers.iter().position(|(n, _)| n == name) {
                Some(i) => {
                    if let Some(slot) = headers.get_mut(i) {
                        slot.1 = value.as_bytes().to_vec();
                    }
                    let mut k = 0;
                    headers.retain(|(n, _)| {
                        k += 1;
                        k - 1 <= i || n != name
                    });
                }
                None => headers.push((name.clone(), value.as_bytes().to_vec())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_ops_apply_in_order_like_single_calls() {
        let mut h: Vec<(String, Vec<u8>)> = vec![
            (":status".into(), b"200".to_vec()),
            ("set-cookie".into(), b"a=1".to_vec()),
            ("vary".into(), b"accept".to_vec()),
            ("set-cookie".into(), b"b=2".to_vec()),
            ("server".into(), b"x".to_vec()),
        ];
        apply_header_ops(
            &mut h,
            &[
                HeaderOp::Remove("server".into()),
                HeaderOp::Set("vary".into(), "accept, origin".into()),
                HeaderOp::Set("x-new".into(), "1".into()),
                HeaderOp::Set("set-cookie".into(), "c=3".into()),
            ],
        );
        let want: Vec<(String, Vec<u8>)> = vec![
            (":status".into(), b"200".to_vec()),
            ("set-cookie".into(), b"c=3".to_vec()),
            ("vary".into(), b"accept, origin".to_vec()),
            ("x-new".into(), b"1".to_vec()),
        ];
        assert_eq!(h, want);
    }
}
