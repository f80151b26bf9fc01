//! The configuration's own JSON reader (`policy/config/reader.rs`, with the types' tables in
//! `policy/config/tables.rs`) against serde's derived deserialisers read by `serde_json` wrapped
//! in `serde_path_to_error`: on every shipped and broken policy, and on thousands of mutations
//! of them, both must take the same documents into the same values, and refuse the same ones,
//! a value refused at the same field. The differences the reader's documentation names are the
//! only ones allowed: an object (or a kind of an internally tagged enum) written as a list, an
//! enum written as an object or a non-string, and members given to a kind that has none
//! (`{"type": "deny", "providers": [...]}`, which serde passes over) are refused by the reader;
//! a field of an internally tagged enum's kind refused is named by its own path, where serde
//! names only the enum.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use api_guard::policy::config::{parse_document, Config};
use serde_json::Value;

/// What serde_json with serde_path_to_error makes of `text`: the value, or whether the error
/// is a syntax error and the field it names.
fn theirs(text: &str) -> Result<Config, (bool, String, String)> {
    // The module used to stop after the object; text after it was not read. (The reader
    // refuses it, as serde_json's own `from_str` does: `end` checks it here.)
    let de = &mut serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize::<_, Config>(&mut *de).map_err(|e| {
        let path = match e.path().to_string() {
            p if p == "?" || p.is_empty() => ".".to_string(),
            p => p,
        };
        (path, e.into_inner())
    });
    let value = value.and_then(|v| de.end().map(|()| v).map_err(|e| (".".to_string(), e)));
    value.map_err(|(path, inner)| {
        let syntax = matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        );
        (syntax, path, inner.to_string())
    })
}

/// The seeds: every policy the repository ships or uses to show a refusal.
fn seeds() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![std::fs::read_to_string(root.join("examples/policy.json")).unwrap()];
    let broken: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tests/cli/broken.json")).unwrap()).unwrap();
    for case in broken.as_array().unwrap() {
        out.push(serde_json::to_string_pretty(&case["policy"]).unwrap());
    }
    out.push(
        r#"{"response": {"security_headers": {"x-frame-options": null, "x-a\u00e9\"b": "v\\u"}},
            "limits": {"max_body_bytes": 1e3, "max_header_count": -0, "allowed_methods": []},
            "routes": [{"name": "\ud83d\ude00", "match": {"prefix": "/"}, "auth": {"type": "public"}}]}"#
            .to_string(),
    );
    out
}

/// Values of each JSON kind, to put where a value was.
const VALUES: [&str; 14] = [
    "\"x\"",
    "1",
    "-1",
    "1.5",
    "1e400",
    "null",
    "true",
    "[]",
    "{}",
    "[1]",
    "{\"a\":1}",
    "\"\\u00e9\"",
    "\"deny\"",
    "0",
];
/// Bytes that break or bend the grammar.
const BREAKERS: [&str; 10] = [",", ":", "\"", "\\", "]", "}", "[", "{", " ", "\u{1}"];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Where the scalar value starting at `start` ends (a string with its escapes, or a run up to
/// a delimiter).
fn scalar_end(text: &[u8], start: usize) -> Option<usize> {
    match text.get(start)? {
        b'"' => {
            let mut i = start + 1;
            while i < text.len() {
                match text[i] {
                    b'\\' => i += 2,
                    b'"' => return Some(i + 1),
                    _ => i += 1,
                }
            }
            None
        }
        b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
            let len =
                text[start..].iter().position(|b| b",}] \n\r\t".contains(b)).unwrap_or(text.len() - start);
            Some(start + len)
        }
        _ => None,
    }
}

/// One mutation of `text`: a member's scalar value replaced by another kind, a value or a
/// grammar byte inserted somewhere, or a few bytes deleted.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    match rng.below(3) {
        0 => {
            let colons: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] == b':').collect();
            if colons.is_empty() {
                return text.to_string();
            }
            let mut start = colons[rng.below(colons.len())] + 1;
            while bytes.get(start) == Some(&b' ') {
                start += 1;
            }
            let Some(end) = scalar_end(bytes, start) else { return text.to_string() };
            out.splice(start..end, VALUES[rng.below(VALUES.len())].bytes());
        }
        1 => {
            let at = rng.below(bytes.len() + 1);
            let what = if rng.below(2) == 0 {
                VALUES[rng.below(VALUES.len())]
            } else {
                BREAKERS[rng.below(BREAKERS.len())]
            };
            out.splice(at..at, what.bytes());
        }
        _ => {
            let at = rng.below(bytes.len());
            let end = (at + 1 + rng.below(3)).min(bytes.len());
            out.drain(at..end);
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// The reader's documented refusals, in its words: an object given as a list, an enum given as
/// anything but one of its names, a member given to a kind of an enum that has none.
fn documented(message: &str) -> bool {
    message.starts_with("must be an object, not a list")
        || message.starts_with("must be an object with a `type`, not a list")
        || (message.starts_with("unknown field `") && message.contains("(no fields are allowed here)"))
        || (message.starts_with("must be one of") && !message.ends_with('`') && !message.contains("?"))
}

/// Whether `ours` names a field inside the internally tagged enum `theirs` names (`auth`,
/// `jwt.default`, a rule's `action`, a rate limit's `key`): serde reads such an enum's fields
/// from its copy of the object, which knows no paths, so it can name only the enum.
fn within_tagged(theirs: &str, ours: &str) -> bool {
    let tagged = ["auth", "default", "action", "key"];
    let last = theirs.rsplit('.').next().unwrap_or(theirs);
    tagged.contains(&last)
        && (ours.strip_prefix(theirs).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('[')))
}

/// Compares the two readers on `text`; returns which way it went, for the tally.
fn compare(text: &str) -> &'static str {
    // Anything but an object is settled before the reader is asked (the configuration's unit
    // tests cover it).
    if !text.trim_start().starts_with('{') {
        return "not an object";
    }
    let ours = parse_document(text.as_bytes());
    match (ours, theirs(text)) {
        (Ok(a), Ok(b)) => {
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "different values for\n{text}");
            "both took it"
        }
        (Err(a), Err((syntax, path, message))) => {
            let ours_syntax = a.path == "." && a.message.contains(" at line ");
            if syntax && ours_syntax {
                return "both refused its syntax";
            }
            // serde_json reads such a value as an object's fields or an enum's variant, and fails
            // further in (or calls a number where a name was expected a syntax error).
            if documented(&a.message) && !ours_syntax {
                return "both refused, the reader naming the field";
            }
            assert!(!syntax && !ours_syntax, "one syntax error, one not: ours {a}, theirs {message}\n{text}");
            if a.path != path && within_tagged(&path, &a.path) {
                return "both refused, the reader naming the field inside the enum";
            }
            assert_eq!(a.path, path, "different fields refused: ours {a}, theirs {message}\n{text}");
            "both refused the same field"
        }
        (Err(a), Ok(_)) => {
            assert!(documented(&a.message), "only the reader refused: {a}\n{text}");
            "only the reader refused (documented)"
        }
        (Ok(_), Err((_, path, message))) => panic!("only serde_json refused, at {path}: {message}\n{text}"),
    }
}

#[test]
fn the_reader_agrees_with_serde_json_on_the_seeds() {
    for seed in seeds() {
        compare(&seed);
    }
}

#[test]
fn the_reader_agrees_with_serde_json_on_mutated_policies() {
    let seeds = seeds();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tally = std::collections::BTreeMap::<&str, usize>::new();
    for _ in 0..20_000 {
        let mut text = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(2) {
            text = mutate(&text, &mut rng);
        }
        *tally.entry(compare(&text)).or_default() += 1;
    }
    println!("{tally:?}");
    // The mutations reach every kind of outcome, or the comparison proves little.
    for kind in ["both took it", "both refused its syntax", "both refused the same field"] {
        assert!(tally.get(kind).copied().unwrap_or(0) >= 100, "{kind}: {tally:?}");
    }
}
