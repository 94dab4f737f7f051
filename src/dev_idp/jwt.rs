//! The IdP's token-signing keys: generation, the published key set (JWKS), signing, and rotation as ZITADEL does
//! it: a new key is published before it signs, and the key it replaces stays published until it is retired.

use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

use super::DevIdpError;
use crate::token::introspect::keyfile::pkcs8_to_pkcs1;

/// The signature algorithms the double can sign with. ZITADEL's web keys use RS256/384/512, ES256/384/512 and
/// EdDSA (RS256 by default); PS256/384/512 are here for verifiers that accept them. ES512 is missing because
/// jsonwebtoken cannot produce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl KeyAlg {
    pub const ALL: [KeyAlg; 9] = [
        KeyAlg::RS256,
        KeyAlg::RS384,
        KeyAlg::RS512,
        KeyAlg::PS256,
        KeyAlg::PS384,
        KeyAlg::PS512,
        KeyAlg::ES256,
        KeyAlg::ES384,
        KeyAlg::EdDSA,
    ];

    pub fn algorithm(self) -> Algorithm {
        match self {
            KeyAlg::RS256 => Algorithm::RS256,
            KeyAlg::RS384 => Algorithm::RS384,
            KeyAlg::RS512 => Algorithm::RS512,
            KeyAlg::PS256 => Algorithm::PS256,
            KeyAlg::PS384 => Algorithm::PS384,
            KeyAlg::PS512 => Algorithm::PS512,
            KeyAlg::ES256 => Algorithm::ES256,
            KeyAlg::ES384 => Algorithm::ES384,
            KeyAlg::EdDSA => Algorithm::EdDSA,
        }
    }

    /// The JOSE name, as in a token header and a JWK's `alg`.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::RS256 => "RS256",
            KeyAlg::RS384 => "RS384",
            KeyAlg::RS512 => "RS512",
            KeyAlg::PS256 => "PS256",
            KeyAlg::PS384 => "PS384",
            KeyAlg::PS512 => "PS512",
            KeyAlg::ES256 => "ES256",
            KeyAlg::ES384 => "ES384",
            KeyAlg::EdDSA => "EdDSA",
        }
    }
}

impl FromStr for KeyAlg {
    type Err = DevIdpError;

    fn from_str(s: &str) -> Result<KeyAlg, DevIdpError> {
        KeyAlg::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or(DevIdpError::UnsupportedAlgorithm)
    }
}

/// One key pair: the private half signs, the public half is what the JWKS publishes.
pub struct SigningKey {
    kid: String,
    alg: KeyAlg,
    encoding: EncodingKey,
    public: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl SigningKey {
    /// A fresh key pair (RSA 2048 for RS*/PS*, as ZITADEL's default web key; P-256/P-384; Ed25519).
    /// Public so tests can sign with a key the IdP never published.
    pub fn generate(alg: KeyAlg, kid: impl Into<String>) -> Result<SigningKey, DevIdpError> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING};
        let encoding = match alg {
            KeyAlg::RS256 | KeyAlg::RS384 | KeyAlg::RS512 | KeyAlg::PS256 | KeyAlg::PS384 | KeyAlg::PS512 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(DevIdpError::KeyGeneration)?;
                let pkcs8: Pkcs8V1Der = pair.as_der().map_err(DevIdpError::KeyGeneration)?;
                let pkcs1 = pkcs8_to_pkcs1(pkcs8.as_ref()).ok_or(DevIdpError::KeyConversion)?;
                EncodingKey::from_rsa_der(&pkcs1)
            }
            KeyAlg::ES256 | KeyAlg::ES384 => {
                let curve = if alg == KeyAlg::ES256 {
                    &ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(curve).map_err(DevIdpError::KeyGeneration)?;
                let pkcs8 = pair.to_pkcs8v1().map_err(DevIdpError::KeyGeneration)?;
                EncodingKey::from_ec_der(pkcs8.as_ref())
            }
            KeyAlg::EdDSA => {
                let pair = aws_lc_rs::signature::Ed25519KeyPair::generate().map_err(DevIdpError::KeyGeneration)?;
                // jsonwebtoken reads the Ed25519 public half only out of a v1 (private-key-only) PKCS#8 document.
                let pkcs8 = pair.to_pkcs8v1().map_err(DevIdpError::KeyGeneration)?;
                EncodingKey::from_ed_der(pkcs8.as_ref())
            }
        };
        let kid = kid.into();
        let mut public = Jwk::from_encoding_key(&encoding, alg.algorithm()).map_err(DevIdpError::Sign)?;
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(SigningKey {
            kid,
            alg,
            encoding,
            public,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// The public half as published: `kty`, `alg`, `use: "sig"`, `kid` and the key material.
    pub fn public_jwk(&self) -> &Jwk {
        &self.public
    }

    /// A compact JWS over `claims` with the header ZITADEL writes: `{"alg", "kid", "typ": "JWT"}`.
    pub fn sign(&self, claims: &Value) -> Result<String, DevIdpError> {
        let mut header = Header::new(self.alg.algorithm());
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(DevIdpError::Sign)
    }
}

/// Where a key is in its life, as ZITADEL's web keys: `Next` is published but does not sign yet ("initial"),
/// `Active` signs, `Previous` no longer signs but stays published so the tokens it signed still verify
/// ("inactive"). Retiring a key removes it from the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Next,
    Active,
    Previous,
}

impl KeyState {
    pub fn label(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Previous => "previous",
        }
    }
}

/// The published keys, in the order they were published; exactly one is `Active`.
pub(super) struct KeyRing {
    keys: Vec<(KeyState, Arc<SigningKey>)>,
    serial: u64,
}

impl KeyRing {
    /// One active key of `alg`.
    pub fn new(alg: KeyAlg) -> Result<KeyRing, DevIdpError> {
        let mut ring = KeyRing {
            keys: Vec::new(),
            serial: 0,
        };
        let key = ring.generate(alg)?;
        ring.keys.push((KeyState::Active, Arc::new(key)));
        Ok(ring)
    }

    /// Numeric-string kids, like ZITADEL's IDs.
    fn generate(&mut self, alg: KeyAlg) -> Result<SigningKey, DevIdpError> {
        self.serial += 1;
        SigningKey::generate(alg, format!("{}", 310_000_000_000_000_000u64 + self.serial))
    }

    pub fn active(&self) -> Option<Arc<SigningKey>> {
        self.keys
            .iter()
            .find(|(state, _)| *state == KeyState::Active)
            .map(|(_, key)| key.clone())
    }

    /// A published key by `kid`, whatever its state.
    pub fn get(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.keys.iter().find(|(_, k)| k.kid == kid).map(|(_, k)| k.clone())
    }

    pub fn is_published(&self, kid: &str) -> bool {
        self.keys.iter().any(|(_, k)| k.kid == kid)
    }

    pub fn states(&self) -> Vec<(String, KeyState)> {
        self.keys.iter().map(|(s, k)| (k.kid.clone(), *s)).collect()
    }

    /// Publishes a new key that does not sign yet; returns its kid.
    pub fn publish_next(&mut self, alg: KeyAlg) -> Result<String, DevIdpError> {
        let key = self.generate(alg)?;
        let kid = key.kid.clone();
        self.keys.push((KeyState::Next, Arc::new(key)));
        Ok(kid)
    }

    /// The oldest `Next` key starts signing; the active one becomes `Previous` and stays published.
    pub fn activate_next(&mut self) -> Option<String> {
        let next = self.keys.iter().position(|(state, _)| *state == KeyState::Next)?;
        for (state, _) in self.keys.iter_mut() {
            if *state == KeyState::Active {
                *state = KeyState::Previous;
            }
        }
        let (state, key) = self.keys.get_mut(next)?;
        *state = KeyState::Active;
        Some(key.kid.clone())
    }

    /// Removes a key from the set; the active key cannot go (the IdP would have nothing to sign with).
    pub fn retire(&mut self, kid: &str) -> Result<(), DevIdpError> {
        let at = self
            .keys
            .iter()
            .position(|(_, k)| k.kid == kid)
            .ok_or(DevIdpError::UnknownKey)?;
        if self.keys.get(at).is_some_and(|(state, _)| *state == KeyState::Active) {
            return Err(DevIdpError::ActiveKey);
        }
        self.keys.remove(at);
        Ok(())
    }

    /// The JWKS document: every published key's public half.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.keys.iter().map(|(_, k)| k.public.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::json;

    fn verify(token: &str, jwk: &Jwk, alg: KeyAlg) -> Value {
        let mut v = Validation::new(alg.algorithm());
        v.validate_aud = false;
        v.set_required_spec_claims::<&str>(&[]);
        v.validate_exp = false;
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
            .unwrap()
            .claims
    }

    #[test]
    fn every_algorithm_signs_and_its_published_key_verifies() {
        for alg in KeyAlg::ALL {
            let key = SigningKey::generate(alg, "k1").unwrap();
            let token = key.sign(&json!({"sub": "u"})).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, alg.algorithm(), "{alg:?}");
            assert_eq!(header.kid.as_deref(), Some("k1"));
            assert_eq!(header.typ.as_deref(), Some("JWT"));
            assert_eq!(verify(&token, key.public_jwk(), alg)["sub"], "u", "{alg:?}");
        }
    }

    #[test]
    fn a_token_does_not_verify_with_another_key() {
        let a = SigningKey::generate(KeyAlg::RS256, "a").unwrap();
        let b = SigningKey::generate(KeyAlg::RS256, "b").unwrap();
        let token = a.sign(&json!({"sub": "u"})).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_aud = false;
        v.validate_exp = false;
        v.set_required_spec_claims::<&str>(&[]);
        assert!(jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_jwk(b.public_jwk()).unwrap(), &v).is_err());
    }

    #[test]
    fn jwks_shape_is_zitadels() {
        let ring = KeyRing::new(KeyAlg::RS256).unwrap();
        let doc = serde_json::to_value(ring.jwks()).unwrap();
        let keys = doc["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let k = &keys[0];
        assert_eq!(k["kty"], "RSA");
        assert_eq!(k["alg"], "RS256");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["e"], "AQAB");
        assert!(k["n"].as_str().unwrap().len() > 300, "a 2048-bit modulus");
        let kid = k["kid"].as_str().unwrap();
        assert!(kid.len() == 18 && kid.bytes().all(|b| b.is_ascii_digit()), "{kid}");
        assert!(k.get("d").is_none() && k.get("p").is_none(), "no private parts");

        let mut ring = ring;
        ring.publish_next(KeyAlg::ES256).unwrap();
        ring.publish_next(KeyAlg::EdDSA).unwrap();
        let doc = serde_json::to_value(ring.jwks()).unwrap();
        let ec = &doc["keys"][1];
        assert_eq!(
            (&ec["kty"], &ec["crv"], &ec["alg"]),
            (&json!("EC"), &json!("P-256"), &json!("ES256"))
        );
        assert!(ec["x"].is_string() && ec["y"].is_string());
        let ed = &doc["keys"][2];
        assert_eq!(
            (&ed["kty"], &ed["crv"], &ed["alg"]),
            (&json!("OKP"), &json!("Ed25519"), &json!("EdDSA"))
        );
    }

    #[test]
    fn rotation_publishes_before_signing_and_keeps_the_old_key_until_retired() {
        let mut ring = KeyRing::new(KeyAlg::RS256).unwrap();
        let first = ring.active().unwrap().kid.clone();

        let next = ring.publish_next(KeyAlg::RS256).unwrap();
        assert_ne!(next, first);
        assert_eq!(ring.active().unwrap().kid, first, "a published key does not sign yet");
        assert!(ring.is_published(&next));
        assert_eq!(
            ring.states(),
            vec![(first.clone(), KeyState::Active), (next.clone(), KeyState::Next)]
        );

        assert_eq!(ring.activate_next().as_deref(), Some(next.as_str()));
        assert_eq!(ring.active().unwrap().kid, next);
        assert!(ring.is_published(&first), "the replaced key stays published");
        assert_eq!(
            ring.states(),
            vec![(first.clone(), KeyState::Previous), (next.clone(), KeyState::Active)]
        );
        assert_eq!(ring.activate_next(), None, "nothing pending");

        assert!(matches!(ring.retire(&next), Err(DevIdpError::ActiveKey)));
        assert!(matches!(ring.retire("nope"), Err(DevIdpError::UnknownKey)));
        ring.retire(&first).unwrap();
        assert!(!ring.is_published(&first));
        assert_eq!(ring.jwks().keys.len(), 1);
    }

    #[test]
    fn pending_keys_activate_in_publication_order() {
        let mut ring = KeyRing::new(KeyAlg::RS256).unwrap();
        let a = ring.publish_next(KeyAlg::ES256).unwrap();
        let b = ring.publish_next(KeyAlg::ES384).unwrap();
        assert_eq!(ring.activate_next(), Some(a));
        assert_eq!(ring.activate_next(), Some(b.clone()));
        assert_eq!(ring.active().unwrap().alg(), KeyAlg::ES384);
        assert_eq!(ring.states().iter().filter(|(_, s)| *s == KeyState::Active).count(), 1);
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in KeyAlg::ALL {
            assert_eq!(alg.name().parse::<KeyAlg>().unwrap(), alg);
        }
        assert!("HS256".parse::<KeyAlg>().is_err());
        assert!("none".parse::<KeyAlg>().is_err());
    }
}
