//! Path confusion through the real Envoy with its default settings (no `normalize_path`, no
//! `merge_slashes`): forms that common upstreams read as another path are refused, and an
//! admitted request reaches the upstream with the path the decision was made on.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::json;
use support::{Client, Envoy, Upstream};

fn policy() -> String {
    policy_with_paths(json!({}))
}

/// The policy with a `paths` section.
fn policy_with_paths(paths: serde_json::Value) -> String {
    json!({
        "paths": paths,
        "routes": [
            {"name": "admin", "match": {"prefix": "/admin"}, "auth": {"type": "deny"}},
            {"name": "public", "match": {"prefix": "/public"}, "auth": {"type": "public"}}
        ]
    })
    .to_string()
}

#[test]
fn forms_upstreams_read_as_another_path_are_refused() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&policy(), upstream.port);
    let api = Client::new(envoy.port);
    // (path, what a common upstream serves)
    for (path, served_as) in [
        ("/public/..;/admin/x", "Tomcat, Jetty, Spring: /admin/x"),
        ("/admin;x", "servlet containers: /admin"),
        ("/admin;/x", "servlet containers: /admin/x"),
        ("/public;jsessionid=1/../admin", "servlet containers: /admin"),
        ("/public/%252e%252e/admin", "a second decoder: /public/../admin"),
        ("/public/%25%32%65%25%32%65/admin", "a second decoder: /public/../admin"),
        ("/admin%20/x", "servers trimming segments: /admin/x"),
        ("/%20admin/x", "servers trimming segments: /admin/x"),
        ("/public/%2e%2e%2fadmin", "an encoded slash"),
        ("/public/..%5cadmin", "an encoded backslash"),
    ] {
        let r = api.get(path);
        assert_eq!(r.status, 400, "{path} ({served_as}): {}", r.text());
        assert_eq!(r.json()["type"], "urn:api-guard:problem:invalid-path", "{path}");
    }
    for path in ["/public/../admin/x", "/public/%2e%2e/admin", "//admin", "/%61dmin", "/public/./../admin"] {
        assert_eq!(api.get(path).status, 403, "{path}");
    }
    assert!(
        upstream.requests().is_empty(),
        "a refused path reached the upstream: {:?}",
        upstream.requests().iter().map(|r| r.path.clone()).collect::<Vec<_>>()
    );
    assert_eq!(envoy.denied("invalid_path"), 10);
}

#[test]
fn an_admitted_request_goes_upstream_with_the_path_it_was_judged_on() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&policy(), upstream.port);
    let api = Client::new(envoy.port);
    for (sent, forwarded) in [
        ("/public//a/./b", "/public/a/b"),
        ("/public/x/../%61", "/public/a"),
        ("/public/%7Euser?q=%2e%2e&x=1", "/public/~user?q=%2e%2e&x=1"),
        ("/public/a%20b", "/public/a%20b"),
        ("/public/caf%c3%a9", "/public/caf%C3%A9"),
        ("/public/plain?x", "/public/plain?x"),
    ] {
        let r = api.get(sent);
        assert_eq!(r.status, 200, "{sent}: {}", r.text());
        let seen: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(seen.last().map(String::as_str), Some(forwarded), "{sent}");
    }
}

#[test]
fn path_parameters_and_encoded_percent_can_be_allowed_with_their_risk() {
    let upstream = Upstream::start();
    let paths = json!({"allow_path_parameters": true, "allow_encoded_percent": true});
    let envoy = Envoy::start(&policy_with_paths(paths), upstream.port);
    let api = Client::new(envoy.port);
    assert_eq!(api.get("/public/a;v=1/b").status, 200);
    assert_eq!(api.get("/public/100%25").status, 200);
    assert_eq!(api.get("/public/a%20/b").status, 400, "edge spaces are never allowed");
    let seen: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(seen, ["/public/a;v=1/b", "/public/100%25"]);
}

/// A `_method` field in a `POST` form body (Rails, Laravel, Symfony, ASP.NET read it there):
/// refused when it names another method, wherever the chunks of the body end; the form is
/// read whole before any of it goes upstream.
#[test]
fn a_method_override_in_a_form_body_never_reaches_the_upstream() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&policy(), upstream.port);
    let api = Client::new(envoy.port);
    let form = ("content-type", "application/x-www-form-urlencoded");
    let multipart = ("content-type", "multipart/form-data; boundary=XyZ");
    let part = |name: &str, value: &str| {
        format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n--XyZ--\r\n")
    };
    for (headers, body) in [
        (vec![form], "title=x&_method=DELETE".to_string()),
        (vec![form], "%5Fmethod=put".to_string()),
        (vec![multipart], part("_method", "PATCH")),
    ] {
        let r = api.request("POST", "/public/items/1", &headers, body.as_bytes());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["type"], "urn:api-guard:problem:method-override");
    }
    // The field split across two writes of a chunked body.
    let head = "POST /public/items/2 HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-type: application/x-www-form-urlencoded\r\n";
    let r = api.send(&support::client::chunked(head, &[b"a=1&_meth", b"od=DELETE"])).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(upstream.requests().is_empty(), "an override reached the upstream");
    // The same method, a field that only mentions it, and other methods' forms pass whole.
    for (method, headers, body) in [
        ("POST", vec![form], "_method=POST&note=_method%3DDELETE".to_string()),
        ("POST", vec![multipart], part("comment", "_method=DELETE")),
        ("PUT", vec![form], "_method=DELETE".to_string()),
    ] {
        let r = api.request(method, "/public/items/3", &headers, body.as_bytes());
        assert_eq!(r.status, 200, "{method} {body}: {}", r.text());
        assert_eq!(upstream.requests().last().map(|r| r.body.clone()), Some(body.into_bytes()));
    }
    assert_eq!(envoy.denied("method_override"), 4);
}

/// With `paths.case_insensitive` and `paths.format_suffix` (the upstream routes `/Admin` and
/// `/admin.json` as `/admin`), those spellings are the `/admin` route; without them they are
/// other paths (and case-sensitive, suffix-less upstreams serve them as such).
#[test]
fn declared_case_and_suffix_insensitive_upstreams_are_matched_as_they_route() {
    let upstream = Upstream::start();
    let paths = json!({"case_insensitive": true, "format_suffix": true});
    let envoy = Envoy::start(&policy_with_paths(paths), upstream.port);
    let api = Client::new(envoy.port);
    for path in ["/Admin/x", "/ADMIN", "/admin.json", "/Admin.JSON/", "/%41dmin.x.json"] {
        assert_eq!(api.get(path).status, 403, "{path}");
    }
    assert_eq!(api.get("/PUBLIC/Report.PDF").status, 200);
    assert_eq!(
        upstream.requests().last().map(|r| r.path.clone()).as_deref(),
        Some("/PUBLIC/Report.PDF"),
        "forwarded as sent"
    );
    assert_eq!(upstream.requests().len(), 1);

    let strict = Envoy::start(&policy(), upstream.port);
    let api = Client::new(strict.port);
    assert_eq!(api.get("/Admin/x").status, 200, "not the /admin route by default");
}
