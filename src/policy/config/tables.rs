//! What each of the configuration's types is called in JSON: its members' names (and which
//! have a default), its kinds, its choices. These tables make the [`Read`] implementations the
//! configuration is read with; the `#[serde(...)]` attributes on the types in `config.rs` say
//! the same for the published schema and for the tests, which hold the two to each other
//! (`tables::tests` here, `tests/config_reader.rs` on mutated policies).
//!
//! A member is written `field` (named as the field), `field: "name"` (renamed), with `default`
//! when serde's `#[serde(default)]` is on it (an `Option` needs none: left out, it is `None`),
//! and `=> function` when the value is read by a function of its own.

use serde::de;

use super::reader::{need, Error, Read, Reader};
use super::*;
use crate::policy::jwt::alg::Alg;
use crate::policy::method::Method;

/// The members of an object, read into the struct (or struct-like kind of an enum) `path`.
macro_rules! read_fields {
    ($r:expr, $tag:expr, $expecting:expr, $($path:ident)::+ {
        $($field:ident $(: $name:literal)? $($default:ident)? $(=> $with:path)?),* $(,)?
    }) => {{
        const NAMES: &[&str] = &[$(read_fields!(@name $field $($name)?)),*];
        // `Reader::fields` marks the members seen in one 64-bit word.
        const _: () = assert!(NAMES.len() <= 64, "an object type of more than 64 members");
        $(let mut $field = None;)*
        $r.fields(&$expecting, NAMES, $tag, &mut |r, i| {
            #[allow(unused_mut, unused_assignments)]
            let mut k = 0usize;
            $(
                if i == k {
                    return read_fields!(@slot r $field $($with)?);
                }
                k += 1;
            )*
            let _ = (r, i, k);
            Ok(())
        })?;
        Ok($($path)::+ { $($field: read_fields!(@take $field $($name)? $($default)?),)* })
    }};
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $name:literal) => { $name };
    (@slot $r:ident $field:ident) => { $r.slot(&mut $field) };
    (@slot $r:ident $field:ident $with:path) => {{
        $field = Some($with(&mut *$r)?);
        Ok(())
    }};
    (@take $field:ident) => { need($field, stringify!($field))? };
    (@take $field:ident $name:literal) => { need($field, $name)? };
    (@take $field:ident default) => { $field.unwrap_or_default() };
    (@take $field:ident $name:literal default) => { $field.unwrap_or_default() };
}

/// An object type: `read_struct!(Type { member, ... })`.
macro_rules! read_struct {
    ($ty:ident { $($members:tt)* }) => {
        impl Read for $ty {
            fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
                read_fields!(r, None, concat!("struct ", stringify!($ty)), $ty { $($members)* })
            }
        }
    };
}

/// An internally tagged enum (`"type"` names its kind): `read_tagged!(Type { "kind" =>
/// Variant { member, ... }, ... })`. A kind without members takes none: serde would pass over
/// any it is given, which would let a misplaced setting go unnoticed.
macro_rules! read_tagged {
    ($ty:ident { $($kind:literal => $variant:ident { $($members:tt)* }),* $(,)? }) => {
        impl Read for $ty {
            fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
                const KINDS: &[&str] = &[$($kind),*];
                let kind = r.tag(&concat!("internally tagged enum ", stringify!($ty)), KINDS)?;
                #[allow(unused_mut, unused_assignments)]
                let mut k = 0usize;
                $(
                    if kind == k {
                        return read_fields!(
                            r,
                            Some("type"),
                            concat!("struct variant ", stringify!($ty), "::", stringify!($variant)),
                            $ty::$variant { $($members)* }
                        );
                    }
                    k += 1;
                )*
                Err(de::Error::missing_field("type"))
            }
        }
    };
}

/// An enum of plain choices, written as one of its names: `read_enum!(Type { "name" =>
/// Variant, ... })`.
macro_rules! read_enum {
    ($ty:ident { $($name:literal => $variant:ident),* $(,)? }) => {
        impl Read for $ty {
            fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
                let i = r.choice(&[$($name),*])?;
                #[allow(unused_mut, unused_assignments)]
                let mut k = 0usize;
                $(
                    if i == k {
                        return Ok($ty::$variant);
                    }
                    k += 1;
                )*
                Err(de::Error::custom("no such choice"))
            }
        }
    };
}

read_struct!(Config {
    schema: "$schema" default,
    limits default,
    routes default,
    problem default,
    request_id_header default,
    jwt,
    host default,
    openapi,
    cors,
    response,
    paths default,
    metrics default,
    rate_limits,
    api_keys,
    protected_resource,
});

read_struct!(ProtectedResourceConfig {
    resource,
    authorization_servers,
    scopes_supported,
    resource_name,
    resource_documentation,
});

read_struct!(ApiKeysConfig { header, consumer_header, keys });

read_struct!(ApiKeyConfig {
    consumer,
    sha256,
    prefix,
    scopes default,
});

read_struct!(RateLimitsConfig {
    policies,
    default default,
    table_size,
    service,
});

read_struct!(RateLimitServiceConfig { cluster, domain, timeout_ms });

read_struct!(RateLimitPolicyConfig {
    requests,
    window_seconds,
    burst,
    key,
    plans,
    headers,
    failure_mode,
    global,
});

read_tagged!(RateKeyConfig {
    "claim" => Claim { claim },
    "client_address" => ClientAddress {},
    "header" => Header { name, trusted default },
    "route" => Route {},
});

read_struct!(RatePlansConfig { claim, limits });

read_struct!(RatePlanConfig { requests, window_seconds, burst });

read_enum!(FailureModeConfig { "fail_open" => FailOpen, "fail_closed" => FailClosed });

read_struct!(MetricsConfig {
    decision_latency default,
});

read_struct!(ResponseConfig {
    security_headers default,
    no_store_when_authenticated,
    remove_headers,
    rules default,
    hash_key,
    max_body_bytes,
    oversize default,
    safe_errors,
});

read_enum!(Oversize { "fail" => Fail, "pass" => Pass });

read_struct!(FieldRuleConfig {
    select,
    action,
    unless_scopes default,
    routes,
    statuses,
});

read_tagged!(FieldActionConfig {
    "remove" => Remove {},
    "mask" => Mask { keep_last default },
    "hash" => Hash {},
});

read_struct!(OpenApiConfig {
    document => super::super::openapi::read::document,
    unknown_operations default,
    reject_unknown_fields default,
    reject_unknown_query_parameters default,
    ambiguous_templates default,
    deprecated default,
    max_errors,
    max_multipart_parts,
    max_multipart_part_bytes,
    response_allowlist default,
});

read_enum!(AmbiguousTemplates { "refuse" => Refuse, "first" => First });

read_enum!(UnknownOperations { "deny" => Deny, "allow" => Allow });

read_struct!(DeprecatedConfig {
    action default,
    date,
    sunset,
});

read_enum!(DeprecatedAction { "allow" => Allow, "warn" => Warn, "deny" => Deny });

read_struct!(JwtConfig { providers, default, realm, token_cache_size, verification_budget });

read_struct!(PathsConfig { allow_path_parameters, allow_encoded_percent, case_insensitive, format_suffix });

read_struct!(VerificationBudgetConfig {
    max_failures,
    window_seconds,
    client_header,
    trusted_hops,
    max_checks_per_second,
});

read_struct!(ProviderConfig {
    issuer,
    audiences,
    algorithms default,
    local_jwks,
    introspection,
    discovery,
    remote_jwks,
    from_headers,
    from_cookies,
    from_params,
    clock_skew_seconds,
    require_expiration,
    max_lifetime_seconds,
    token_type,
    claim_to_headers,
    forward,
    forward_payload_header,
    max_token_bytes,
    require_certificate_bound default,
    dpop,
});

read_struct!(DpopConfig { mode, algorithms, max_age_seconds, origin });

read_enum!(DpopMode { "required" => Required, "allowed" => Allowed });

read_struct!(RemoteJwksConfig {
    http_uri,
    cache_duration_seconds,
    min_refetch_interval_seconds,
    max_stale_seconds,
});

read_struct!(IntrospectionConfig {
    uri,
    cluster,
    timeout_ms,
    client_id,
    client_secret,
    cache_seconds,
    inactive_cache_seconds,
});

read_struct!(DiscoveryConfig {
    uri,
    cluster,
    timeout_ms,
    cache_duration_seconds,
    min_refetch_interval_seconds,
    max_stale_seconds,
});

read_struct!(HttpUriConfig { uri, cluster, timeout_ms });

read_struct!(HeaderSourceConfig { name, value_prefix });

read_struct!(ClaimToHeaderConfig { claim, header });

read_tagged!(AuthConfig {
    "public" => Public {},
    "deny" => Deny {},
    "api_key" => ApiKey { scopes default },
    "jwt" => Jwt { providers, require_all default, scopes default, claims default, bind default },
});

read_struct!(ClaimConditionConfig { claim, equals, one_of, contains });

read_struct!(BindConfig { param, claim });

read_struct!(HostConfig { hold_headers_for_body, kind, response_body_buffer_bytes });

read_enum!(HostKindConfig { "envoy" => Envoy, "kong" => Kong, "apisix" => Apisix });

read_struct!(LimitsConfig {
    max_body_bytes,
    allowed_methods,
    allowed_content_types,
    max_header_count,
    max_header_bytes,
    query_credentials,
    json,
});

read_struct!(JsonLimitsConfig {
    max_depth,
    max_object_keys,
    max_array_length,
    max_string_length,
    max_number_length,
    duplicate_keys,
});

read_enum!(DuplicateKeys { "deny" => Deny, "allow" => Allow });

read_struct!(QueryCredentialsConfig {
    action default,
    names,
});

read_enum!(QueryCredentialsAction { "deny" => Deny, "allow" => Allow });

read_struct!(RouteConfig {
    name,
    matcher: "match",
    limits default,
    auth,
    cors,
    response default,
    rate_limits,
});

read_struct!(RouteResponseConfig { max_body_bytes, oversize });

read_struct!(CorsConfig {
    allowed_origins,
    allow_null_origin default,
    allowed_methods,
    allowed_headers default,
    exposed_headers default,
    allow_credentials default,
    max_age,
    allow_private_network default,
    refuse_disallowed default,
    mode default,
});

read_enum!(RefuseDisallowed { "unsafe_methods" => UnsafeMethods, "all" => All, "none" => None });

read_enum!(CorsMode { "enforce" => Enforce, "report_only" => ReportOnly });

read_struct!(MatchConfig { path, prefix, methods });

read_struct!(ProblemConfig { type_base });

read_enum!(Alg {
    "RS256" => RS256, "RS384" => RS384, "RS512" => RS512, "PS256" => PS256, "PS384" => PS384,
    "PS512" => PS512, "ES256" => ES256, "ES384" => ES384, "EdDSA" => EdDSA, "HS256" => HS256,
    "HS384" => HS384, "HS512" => HS512,
});

read_enum!(Method {
    "GET" => GET, "HEAD" => HEAD, "POST" => POST, "PUT" => PUT, "PATCH" => PATCH,
    "DELETE" => DELETE, "OPTIONS" => OPTIONS, "TRACE" => TRACE, "CONNECT" => CONNECT,
});

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

    use super::*;
    use crate::policy::config::reader;
    use serde::Deserialize;
    use std::fmt::Debug;

    /// The value (as `Debug` prints it) or the message, by these tables and by serde's derive.
    fn both<T: Read + for<'de> Deserialize<'de> + Debug>(text: &str) -> [Result<String, String>; 2] {
        let ours = reader::read::<T>(text).map(|v| format!("{v:?}")).map_err(|e| e.message().to_string());
        let theirs = serde_json::from_str::<T>(text).map(|v| format!("{v:?}")).map_err(|e| {
            let message = e.to_string();
            message.rsplit_once(" at line ").map_or(message.clone(), |(m, _)| m.to_string())
        });
        [ours, theirs]
    }

    fn agree<T: Read + for<'de> Deserialize<'de> + Debug>(text: &str) {
        let [ours, theirs] = both::<T>(text);
        assert_eq!(ours, theirs, "{} read from {text}", std::any::type_name::<T>());
    }

    /// The backticked names in a message listing them.
    fn listed(message: &str) -> Vec<String> {
        message.split('`').skip(3).step_by(2).map(str::to_string).collect()
    }

    /// An object type, from a document with only its required members: the same value, the same
    /// missing member when any one of them is left out, the same names when one is unknown.
    fn object<T: Read + for<'de> Deserialize<'de> + Debug>(minimal: &str) {
        let [ours, _] = both::<T>(minimal);
        assert!(ours.is_ok(), "{minimal}: {ours:?}");
        agree::<T>(minimal);
        let members = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(minimal).unwrap();
        for name in members.keys() {
            let mut fewer = members.clone();
            fewer.remove(name);
            agree::<T>(&serde_json::Value::Object(fewer).to_string());
        }
        let mut unknown = members.clone();
        unknown.insert("\u{1}".into(), 0.into());
        let text = serde_json::Value::Object(unknown).to_string();
        let [ours, theirs] = both::<T>(&text);
        // serde passes over members given to a kind that has none; the tables refuse them.
        if !(members.len() == 1 && members.contains_key("type")) {
            assert_eq!(ours, theirs, "{text}");
        }
        assert!(ours.unwrap_err().starts_with("unknown field"));
    }

    /// An enum of choices: the same names in the same order, each read into the same variant.
    fn choices<T: Read + for<'de> Deserialize<'de> + Debug>() {
        let [ours, theirs] = both::<T>("\"\\u0001\"");
        assert_eq!(ours, theirs);
        let names = listed(&ours.unwrap_err());
        assert!(!names.is_empty());
        for name in names {
            agree::<T>(&format!("\"{name}\""));
        }
    }

    /// An internally tagged enum: the same kinds (each given by `minimal`, one per kind).
    fn tagged<T: Read + for<'de> Deserialize<'de> + Debug>(minimal: &[&str]) {
        let [ours, theirs] = both::<T>(r#"{"type": "\u0001"}"#);
        assert_eq!(ours, theirs);
        let kinds = listed(&ours.unwrap_err());
        assert_eq!(kinds.len(), minimal.len(), "{kinds:?}");
        for (kind, text) in kinds.iter().zip(minimal) {
            assert!(text.contains(&format!("\"type\":\"{kind}\"")), "{text} for {kind}");
            object::<T>(text);
        }
        for text in ["{}", "[]", "1", r#"{"type": 1}"#, r#"{"type": "x", "type": "y"}"#] {
            let [ours, theirs] = both::<T>(text);
            assert!(ours.is_err() && theirs.is_err(), "{text}");
        }
    }

    #[test]
    fn the_tables_name_what_serde_names() {
        object::<Config>("{}");
        object::<ProtectedResourceConfig>(r#"{"resource":"r"}"#);
        object::<ApiKeysConfig>(r#"{"keys":[]}"#);
        object::<ApiKeyConfig>(r#"{"consumer":"c","sha256":"s"}"#);
        object::<RateLimitsConfig>(r#"{"policies":{}}"#);
        object::<RateLimitServiceConfig>(r#"{"cluster":"c","domain":"d"}"#);
        object::<RateLimitPolicyConfig>(r#"{"key":{"type":"route"}}"#);
        tagged::<RateKeyConfig>(&[
            r#"{"type":"claim","claim":"c"}"#,
            r#"{"type":"client_address"}"#,
            r#"{"type":"header","name":"n"}"#,
            r#"{"type":"route"}"#,
        ]);
        object::<RatePlansConfig>(r#"{"claim":"c","limits":{}}"#);
        object::<RatePlanConfig>(r#"{"requests":1}"#);
        choices::<FailureModeConfig>();
        object::<MetricsConfig>("{}");
        object::<ResponseConfig>("{}");
        choices::<Oversize>();
        object::<FieldRuleConfig>(r#"{"select":[],"action":{"type":"remove"}}"#);
        tagged::<FieldActionConfig>(&[r#"{"type":"remove"}"#, r#"{"type":"mask"}"#, r#"{"type":"hash"}"#]);
        // The lean build refuses every document (`openapi_absent.rs`), which the lean tests hold.
        #[cfg(feature = "openapi")]
        object::<OpenApiConfig>(r#"{"document":{}}"#);
        choices::<AmbiguousTemplates>();
        choices::<UnknownOperations>();
        object::<DeprecatedConfig>("{}");
        choices::<DeprecatedAction>();
        object::<JwtConfig>(r#"{"providers":{}}"#);
        object::<PathsConfig>("{}");
        object::<VerificationBudgetConfig>("{}");
        object::<ProviderConfig>(r#"{"issuer":"i","audiences":[]}"#);
        object::<DpopConfig>(r#"{"mode":"required"}"#);
        choices::<DpopMode>();
        object::<RemoteJwksConfig>(r#"{"http_uri":{"uri":"u"}}"#);
        object::<IntrospectionConfig>(r#"{"uri":"u","client_id":"c","client_secret":"s"}"#);
        object::<DiscoveryConfig>("{}");
        object::<HttpUriConfig>(r#"{"uri":"u"}"#);
        object::<HeaderSourceConfig>(r#"{"name":"n"}"#);
        object::<ClaimToHeaderConfig>(r#"{"claim":"c","header":"h"}"#);
        tagged::<AuthConfig>(&[
            r#"{"type":"public"}"#,
            r#"{"type":"deny"}"#,
            r#"{"type":"api_key"}"#,
            r#"{"type":"jwt","providers":[]}"#,
        ]);
        object::<ClaimConditionConfig>(r#"{"claim":"c"}"#);
        object::<BindConfig>(r#"{"param":"p","claim":"c"}"#);
        object::<HostConfig>("{}");
        choices::<HostKindConfig>();
        object::<LimitsConfig>("{}");
        object::<JsonLimitsConfig>("{}");
        choices::<DuplicateKeys>();
        object::<QueryCredentialsConfig>("{}");
        choices::<QueryCredentialsAction>();
        object::<RouteConfig>(r#"{"name":"n","match":{}}"#);
        object::<RouteResponseConfig>("{}");
        object::<CorsConfig>(r#"{"allowed_origins":[]}"#);
        choices::<RefuseDisallowed>();
        choices::<CorsMode>();
        object::<MatchConfig>("{}");
        object::<ProblemConfig>("{}");
        choices::<Alg>();
        choices::<Method>();
    }

    /// Every member of every object, given a value: the same value read both ways. (The
    /// example policy leaves many out; this names each one the schema knows.)
    #[test]
    fn members_with_values_read_as_serde_reads_them() {
        agree::<ProviderConfig>(
            r#"{"issuer":"i","audiences":["a"],"algorithms":["ES256"],"local_jwks":{"keys":[]},
            "introspection":{"uri":"u","cluster":"c","timeout_ms":1,"client_id":"c","client_secret":"s",
            "cache_seconds":2,"inactive_cache_seconds":3},"discovery":{"uri":"u","cluster":"c","timeout_ms":1,
            "cache_duration_seconds":2,"min_refetch_interval_seconds":3,"max_stale_seconds":4},
            "remote_jwks":{"http_uri":{"uri":"u","cluster":"c","timeout_ms":1},"cache_duration_seconds":2,
            "min_refetch_interval_seconds":3,"max_stale_seconds":4},"from_headers":[{"name":"n","value_prefix":"p"}],
            "from_cookies":["c"],"from_params":["p"],"clock_skew_seconds":1,"require_expiration":false,
            "max_lifetime_seconds":2,"token_type":"t","claim_to_headers":[{"claim":"c","header":"h"}],
            "forward":true,"forward_payload_header":"x","max_token_bytes":3,"require_certificate_bound":true,
            "dpop":{"mode":"allowed","algorithms":["EdDSA"],"max_age_seconds":1,"origin":"o"}}"#,
        );
        agree::<AuthConfig>(
            r#"{"providers":["p"],"type":"jwt","require_all":true,"scopes":["s"],
            "claims":[{"claim":"c","equals":1,"one_of":[1,"x"],"contains":"y"}],"bind":[{"param":"p","claim":"c"}]}"#,
        );
        agree::<AuthConfig>(r#"{"scopes":["s"],"type":"api_key"}"#);
        agree::<FieldActionConfig>(r#"{"type":"mask","keep_last":4}"#);
        agree::<RateKeyConfig>(r#"{"type":"header","name":"n","trusted":true}"#);
    }
}
