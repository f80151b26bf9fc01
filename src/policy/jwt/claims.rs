//! Registered-claim checks (RFC 7519 §4.1, RFC 8725 §3.8–3.11, RFC 9068 §2.1):
//! `iss`, `aud`, `exp`, `nbf`, `iat`, an optional lifetime cap, and explicit typing (`typ`).

use serde_json::{Map, Value};

/// What a provider demands of every token's registered claims. Built once at load.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    /// `iss` must equal this exactly.
    pub issuer: String,
    /// `aud` must hold at least one of these.
    pub audiences: Vec<String>,
    /// Tolerance for `exp`, `nbf` and `iat`, in seconds.
    pub skew: i64,
    /// Whether `exp` must be present.
    pub require_expiration: bool,
    /// Longest accepted `exp - iat` (or `exp - now` without `iat`), in seconds.
    pub max_lifetime: Option<i64>,
    /// Required `typ` header (lower-case, without `application/`), e.g. `at+jwt`.
    pub token_type: Option<String>,
}

/// Why a token's claims are not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    /// `iss` missing or different.
    Issuer,
    /// `aud` missing or holds none of the audiences.
    Audience,
    /// `exp` is past.
    Expired,
    /// `exp` is required but missing.
    MissingExpiration,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iat` is in the future.
    IssuedInFuture,
    /// The token lives longer than allowed.
    Lifetime,
    /// A registered claim has the wrong type (e.g. `exp` as a string).
    Malformed,
    /// The `typ` header is missing or different.
    TokenType,
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds, here required to fit in i64.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, ClaimError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                return Ok(Some(i));
            }
            let f = n.as_f64().ok_or(ClaimError::Malformed)?;
            if f.is_finite() && f.abs() < 9.0e18 {
                Ok(Some(f.floor() as i64))
            } else {
                Err(ClaimError::Malformed)
            }
        }
        Some(_) => Err(ClaimError::Malformed),
    }
}

/// Normalises a `typ` value: lower-case, `application/` prefix removed (RFC 7515 §4.1.9).
pub fn normal_type(typ: &str) -> String {
    let lower = typ.trim().to_ascii_lowercase();
    lower.strip_prefix("application/").map(str::to_string).unwrap_or(lower)
}

impl ClaimRules {
    /// Checks the header's `typ` and the registered claims at time `now` (Unix seconds).
    pub fn check(
        &self,
        header: &Map<String, Value>,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<(), ClaimError> {
        if let Some(want) = &self.token_type {
            let typ = header.get("typ").and_then(Value::as_str).map(normal_type);
            if typ.as_deref() != Some(want.as_str()) {
                return Err(ClaimError::TokenType);
            }
        }
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => {}
            _ => return Err(ClaimError::Issuer),
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => self.audiences.contains(a),
            Some(Value::Array(list)) => {
                list.iter().any(|a| a.as_str().is_some_and(|a| self.audiences.iter().any(|x| x == a)))
            }
            _ => false,
        };
        if !aud_ok {
            return Err(ClaimError::Audience);
        }
        let exp = numeric_date(claims, "exp")?;
        let nbf = numeric_date(claims, "nbf")?;
        let iat = numeric_date(claims, "iat")?;
        match exp {
            Some(exp) if now >= exp.saturating_add(self.skew) => return Err(ClaimError::Expired),
            None if self.require_expiration || self.max_lifetime.is_some() => {
                return Err(ClaimError::MissingExpiration)
            }
            _ => {}
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.skew)) {
            return Err(ClaimError::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now.saturating_add(self.skew)) {
            return Err(ClaimError::IssuedInFuture);
        }
        if let (Some(max), Some(exp)) = (self.max_lifetime, exp) {
            let start = iat.unwrap_or(now);
            if exp.saturating_sub(start) > max {
                return Err(ClaimError::Lifetime);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: "https://iss".into(),
            audiences: vec!["api".into(), "api2".into()],
            skew: 60,
            require_expiration: true,
            max_lifetime: None,
            token_type: None,
        }
    }

    fn check(r: &ClaimRules, header: Value, claims: Value) -> Result<(), ClaimError> {
        r.check(header.as_object().unwrap(), claims.as_object().unwrap(), NOW)
    }

    fn base() -> Value {
        json!({"iss": "https://iss", "aud": "api", "exp": NOW + 100, "iat": NOW - 10})
    }

    fn with(k: &str, v: Value) -> Value {
        let mut b = base();
        b[k] = v;
        b
    }

    #[test]
    fn accepts_good_claims() {
        assert_eq!(check(&rules(), json!({}), base()), Ok(()));
        assert_eq!(check(&rules(), json!({}), with("aud", json!(["x", "api2"]))), Ok(()));
        assert_eq!(check(&rules(), json!({}), with("exp", json!(NOW - 59))), Ok(()), "within skew");
        assert_eq!(check(&rules(), json!({}), with("exp", json!((NOW + 100) as f64 + 0.5))), Ok(()));
    }

    #[test]
    fn refuses_bad_claims() {
        let r = rules();
        let cases = [
            (with("iss", json!("https://other")), ClaimError::Issuer),
            (with("iss", json!(["https://iss"])), ClaimError::Issuer),
            (with("aud", json!("other")), ClaimError::Audience),
            (with("aud", json!([])), ClaimError::Audience),
            (with("aud", json!([1, 2])), ClaimError::Audience),
            (with("exp", json!(NOW - 60)), ClaimError::Expired),
            (with("exp", json!("2000000000")), ClaimError::Malformed),
            (with("exp", json!(1e300)), ClaimError::Malformed),
            (with("nbf", json!(NOW + 61)), ClaimError::NotYetValid),
            (with("iat", json!(NOW + 61)), ClaimError::IssuedInFuture),
            (with("iat", json!(true)), ClaimError::Malformed),
        ];
        for (claims, want) in cases {
            assert_eq!(check(&r, json!({}), claims.clone()), Err(want), "{claims}");
        }
        let mut no_exp = base();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(check(&r, json!({}), no_exp.clone()), Err(ClaimError::MissingExpiration));
        let lax = ClaimRules { require_expiration: false, ..rules() };
        assert_eq!(check(&lax, json!({}), no_exp), Ok(()));
    }

    #[test]
    fn lifetime_and_type() {
        let r = ClaimRules { max_lifetime: Some(3600), token_type: Some("at+jwt".into()), ..rules() };
        let typed = json!({"typ": "at+JWT"});
        assert_eq!(check(&r, typed.clone(), base()), Ok(()));
        assert_eq!(check(&r, json!({"typ": "application/at+jwt"}), base()), Ok(()));
        assert_eq!(check(&r, json!({"typ": "JWT"}), base()), Err(ClaimError::TokenType));
        assert_eq!(check(&r, json!({}), base()), Err(ClaimError::TokenType));
        let long = with("exp", json!(NOW + 7200));
        assert_eq!(check(&r, typed.clone(), long), Err(ClaimError::Lifetime));
        let mut no_iat = with("exp", json!(NOW + 3000));
        no_iat.as_object_mut().unwrap().remove("iat");
        assert_eq!(check(&r, typed, no_iat), Ok(()));
    }
}
