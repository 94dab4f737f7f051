//! The RFC 7523 client assertion for ZITADEL's JWT profile: RS256, `kid` = keyId, `iss` = `sub` = clientId,
//! `aud` = issuer, a short lifetime and a fresh `jti`. Pure apart from the random `jti`; the clock is passed in.

use std::sync::Mutex;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::keyfile::KeyFile;
use crate::secret::Secret;

pub type SignError = jsonwebtoken::errors::Error;

/// Well under ZITADEL's one-hour limit on `iat`, short enough that a leaked assertion is soon worthless.
pub const LIFETIME_SECS: u64 = 300;
/// With reuse on, an assertion is replaced once this share of its lifetime has passed.
pub const REUSE_FRACTION: f64 = 0.8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

pub struct AssertionSigner {
    key_id: String,
    client_id: String,
    audience: String,
    key: EncodingKey,
    reuse: bool,
    current: Mutex<Option<(Secret, u64)>>,
}

impl AssertionSigner {
    /// `audience` is the issuer exactly as discovery spells it.
    pub fn new(key: &KeyFile, audience: String, reuse: bool) -> Self {
        AssertionSigner {
            key_id: key.key_id.clone(),
            client_id: key.client_id.clone(),
            audience,
            key: key.encoding_key(),
            reuse,
            current: Mutex::new(None),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn reuses(&self) -> bool {
        self.reuse
    }

    pub fn claims(&self, now: u64, jti: String) -> AssertionClaims {
        AssertionClaims {
            iss: self.client_id.clone(),
            sub: self.client_id.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + LIFETIME_SECS,
            jti,
        }
    }

    /// An assertion valid at `now`; the flag says whether a new one was signed (for the metric).
    pub fn assertion(&self, now: u64) -> Result<(Secret, bool), SignError> {
        if self.reuse
            && let Ok(guard) = self.current.lock()
            && let Some((a, renew_at)) = guard.as_ref()
            && now < *renew_at
        {
            return Ok((a.clone(), false));
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key_id.clone());
        // jsonwebtoken's errors name the failure class only; they never hold key bytes.
        let signed = jsonwebtoken::encode(&header, &self.claims(now, new_jti()), &self.key).map(Secret::new)?;
        if self.reuse {
            let renew_at = now + (LIFETIME_SECS as f64 * REUSE_FRACTION) as u64;
            if let Ok(mut guard) = self.current.lock() {
                *guard = Some((signed.clone(), renew_at));
            }
        }
        Ok((signed, true))
    }
}

/// 128 random bits, hex: unique per assertion as RFC 7523 servers other than ZITADEL demand.
pub fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    // The system RNG failing is not recoverable in any meaningful way; a zero jti would only risk a replay refusal.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::introspect::keyfile::tests::fixture;
    use jsonwebtoken::{DecodingKey, Validation};

    fn signer(reuse: bool) -> (AssertionSigner, KeyFile) {
        let key = KeyFile::parse(&fixture(serde_json::json!({}))).unwrap();
        (
            AssertionSigner::new(&key, "https://issuer.example.com".into(), reuse),
            key,
        )
    }

    #[test]
    fn every_claim_with_a_fixed_clock() {
        let (s, key) = signer(false);
        let now = 1_700_000_000;
        let (jwt, fresh) = s.assertion(now).unwrap();
        assert!(fresh);
        let header = jsonwebtoken::decode_header(jwt.expose()).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("kid-1"));
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&["https://issuer.example.com"]);
        v.validate_exp = false;
        let data =
            jsonwebtoken::decode::<AssertionClaims>(jwt.expose(), &DecodingKey::from_rsa_der(&key.public_der), &v)
                .unwrap();
        let c = data.claims;
        assert_eq!(c.iss, "client-1@project");
        assert_eq!(c.sub, "client-1@project");
        assert_eq!(c.aud, "https://issuer.example.com");
        assert_eq!(c.iat, now);
        assert_eq!(c.exp, now + LIFETIME_SECS);
        assert!(c.exp - c.iat < 3600);
        assert_eq!(c.jti.len(), 32);
    }

    #[test]
    fn fresh_jti_each_time_without_reuse() {
        let (s, _) = signer(false);
        let (a, _) = s.assertion(100).unwrap();
        let (b, signed) = s.assertion(100).unwrap();
        assert!(signed);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn reuse_until_eighty_percent_of_lifetime() {
        let (s, _) = signer(true);
        let (a, first) = s.assertion(1_000).unwrap();
        let (b, second) = s.assertion(1_000 + 239).unwrap();
        assert!(first && !second);
        assert_eq!(a.expose(), b.expose());
        let (c, third) = s.assertion(1_000 + 240).unwrap();
        assert!(third);
        assert_ne!(a.expose(), c.expose());
    }
}
