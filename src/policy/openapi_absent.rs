//! The lean build's stand-in for [OpenAPI validation](https://spec.openapis.org/oas/v3.1.0):
//! the module built without the `openapi` feature (`make wasm-lean`).
//!
//! OpenAPI validation brings the JSON Schema validator with its pattern engine and its URL and
//! IDNA code: 40% of the full module's code and most of its data, and Envoy compiles every
//! byte of it before the first request. A policy without an `openapi` section does not need it. Here the section
//! is refused at load, naming it: a lean module never passes a request its policy asked to
//! validate. Everything else has the shapes the policy core asks for, and cannot exist:
//! [`ApiSpec`] holds an uninhabited field, so every method on it is unreachable by type.

use serde_json::Value;

use super::body::BodyTarget;
use super::config::{ConfigError, OpenApiConfig};
use super::denial::Denial;
use super::http::RequestHead;
use super::method::Method;
use super::route::MatchRules;

/// Why the lean build refuses `openapi` (one sentence, the same at every door).
pub const REFUSAL: &str = "this is the lean build of api-guard, without OpenAPI validation: \
     load the full module (`make wasm`, or the image tag without `-lean`) to validate requests against a document";

/// No value of this type exists.
#[derive(Debug)]
pub enum Absent {}

/// A compiled OpenAPI document: never made in this build.
#[derive(Debug)]
pub struct ApiSpec {
    /// Operations (none: this value cannot exist).
    pub operations: Vec<Operation>,
    absent: Absent,
}

/// One documented operation.
#[derive(Debug)]
pub struct Operation {
    /// Response headers announcing deprecation.
    pub response_headers: Vec<(String, String)>,
}

/// A request matched to an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'p> {
    /// The operation's index.
    pub operation: usize,
    /// Path template values, raw.
    pub params: Vec<(String, &'p str)>,
}

impl ApiSpec {
    /// Refuses: the configuration reader has already refused `openapi.document`, so this is
    /// reached only by a policy built in code.
    pub fn compile(_: &OpenApiConfig, _: Value, _: MatchRules) -> Result<ApiSpec, ConfigError> {
        Err(ConfigError::new("openapi", REFUSAL))
    }

    /// Unreachable: no `ApiSpec` exists.
    pub fn find<'p>(&self, _: Option<Method>, _: &'p str) -> Result<Option<Found<'p>>, Denial> {
        match self.absent {}
    }

    /// Unreachable: no `ApiSpec` exists.
    pub fn response_shape(&self, _: usize, _: u16) -> Option<&[usize]> {
        match self.absent {}
    }

    /// Unreachable: no `ApiSpec` exists.
    pub fn shapes(&self) -> &shape::Shapes {
        match self.absent {}
    }

    /// Unreachable: no `ApiSpec` exists.
    pub fn prunes_responses(&self) -> bool {
        match self.absent {}
    }

    /// Unreachable: no `ApiSpec` exists.
    pub fn prune_response(&self, _: &[usize], _: &mut Value) -> usize {
        match self.absent {}
    }

    /// Unreachable: no `ApiSpec` exists.
    pub fn check_request(&self, _: &Found<'_>, _: &str, _: &RequestHead<'_>) -> Result<(), Denial> {
        match self.absent {}
    }

    /// Unreachable: no `ApiSpec` exists.
    pub fn body_target(&self, _: usize, _: bool, _: Option<&[u8]>) -> Result<Option<BodyTarget>, Denial> {
        match self.absent {}
    }

    /// Unreachable: no `ApiSpec` exists.
    pub fn check_body(&self, _: BodyTarget, _: &[u8]) -> Result<(), Denial> {
        match self.absent {}
    }

    /// Unreachable: no `ApiSpec` exists.
    pub fn check_body_quick(&self, _: BodyTarget, _: &[u8]) -> bool {
        match self.absent {}
    }

    /// Unreachable: no `ApiSpec` exists.
    pub fn check_body_tree(&self, _: BodyTarget, _: &[u8]) -> Result<(), Denial> {
        match self.absent {}
    }
}

/// The response allowlist's shapes: never made in this build.
pub mod shape {
    use serde_json::Value;
    use std::borrow::Cow;

    /// Compiled object shapes: this value cannot exist.
    #[derive(Debug)]
    pub struct Shapes {
        absent: super::Absent,
    }

    impl Shapes {
        /// Unreachable: no `Shapes` exists.
        pub fn place(&self, _: &[usize], _: usize) -> Cow<'_, [usize]> {
            match self.absent {}
        }

        /// Unreachable: no `Shapes` exists.
        pub fn member(&self, _: &[usize], _: &mut Vec<usize>, _: &str) -> bool {
            match self.absent {}
        }

        /// Unreachable: no `Shapes` exists.
        pub fn items(&self, _: &mut Vec<usize>, _: usize) {
            match self.absent {}
        }

        /// Unreachable: no `Shapes` exists.
        pub fn prune(&self, _: &[usize], _: &mut Value) -> usize {
            match self.absent {}
        }
    }
}

/// Reading `openapi.document`: refused, at that field, before any of it is read.
pub mod read {
    use serde::de::{Deserializer, Error};
    use serde_json::Value;

    /// Refuses the document (serde's `deserialize_with`).
    pub fn document<'de, D: Deserializer<'de>>(_: D) -> Result<Value, D::Error> {
        Err(D::Error::custom(super::REFUSAL))
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

    use super::super::config;

    /// The section is refused at its document, with the reason and what to do; the rest of
    /// the example policy loads.
    #[test]
    fn the_openapi_section_is_refused_naming_it() {
        let text = include_str!("../../examples/policy.json");
        let e = config::parse(text.as_bytes()).unwrap_err();
        assert_eq!(e.path, "openapi.document");
        assert_eq!(e.message, super::REFUSAL);
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        v.as_object_mut().unwrap().remove("openapi");
        let policy = config::parse(v.to_string().as_bytes()).unwrap();
        assert!(policy.api.is_none());
        // `null` is no section, as in the full build.
        assert!(config::parse(br#"{"openapi": null}"#).unwrap().api.is_none());
        // Even an empty document: nothing under `openapi` is read.
        let e = config::parse(br#"{"openapi": {"document": {}}}"#).unwrap_err();
        assert_eq!((e.path.as_str(), e.message.as_str()), ("openapi.document", super::REFUSAL));
    }
}
