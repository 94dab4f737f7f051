//! The ZITADEL API-application JSON key: parsing, validation of the RSA key inside, and the public half.

use std::path::Path;

use serde_json::Value;
use sha2::Digest;

use crate::secret::Secret;

/// A loaded application key. The private key never leaves this struct except as a signing key.
pub struct KeyFile {
    pub key_id: String,
    pub client_id: String,
    pub app_id: Option<String>,
    /// PKCS#1 `RSAPrivateKey` DER.
    private_der: Vec<u8>,
    /// PKCS#1 `RSAPublicKey` DER: what a verifier (ZITADEL, or our double) needs.
    pub public_der: Vec<u8>,
    /// SHA-256 of the file as read, to notice a changed file.
    pub fingerprint: [u8; 32],
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("key_id", &self.key_id)
            .field("client_id", &self.client_id)
            .field("app_id", &self.app_id)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

/// Messages name the field at fault, never its content: the content may be the private key.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key file is not JSON")]
    NotJson,
    #[error("the key file is not a JSON object")]
    NotAnObject,
    #[error(
        "this is a machine-user (\"serviceaccount\") key: it is for the JWT-bearer grant, not for introspection. \
         Create a key for the API application (authentication method JWT) in the ZITADEL console and use that"
    )]
    ServiceAccount,
    #[error("the key file's \"type\" is not \"application\"")]
    UnknownType,
    #[error("the key file has no {0:?} field")]
    Missing(&'static str),
    #[error("the key file's {0:?} field is not a non-empty string")]
    WrongType(&'static str),
    #[error("the key file's \"key\" is not a PEM-encoded RSA private key ({0})")]
    BadKey(&'static str),
}

impl KeyFile {
    pub fn load(path: &Path) -> Result<KeyFile, KeyFileError> {
        let bytes = std::fs::read(path).map_err(|source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        KeyFile::parse(&bytes)
    }

    pub fn parse(bytes: &[u8]) -> Result<KeyFile, KeyFileError> {
        // Parsed into a Value first: serde's typed errors can quote the offending input, which may be key material.
        let value: Value = serde_json::from_slice(bytes).map_err(|_| KeyFileError::NotJson)?;
        let obj = value.as_object().ok_or(KeyFileError::NotAnObject)?;
        let text = |name: &'static str| -> Result<Option<String>, KeyFileError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
                Some(_) => Err(KeyFileError::WrongType(name)),
            }
        };
        match text("type")?.as_deref() {
            Some("application") | None => {}
            Some("serviceaccount") => return Err(KeyFileError::ServiceAccount),
            Some(_) => return Err(KeyFileError::UnknownType),
        }
        if obj.contains_key("userId") && !obj.contains_key("clientId") && !obj.contains_key("clientID") {
            return Err(KeyFileError::ServiceAccount);
        }
        let key_id = text("keyId")?.ok_or(KeyFileError::Missing("keyId"))?;
        // Old ZITADEL versions wrote `clientID`.
        let client_id = match text("clientId")? {
            Some(id) => id,
            None => text("clientID")?.ok_or(KeyFileError::Missing("clientId"))?,
        };
        let app_id = text("appId")?;
        let pem_text = Secret::new(text("key")?.ok_or(KeyFileError::Missing("key"))?);
        let private_der = rsa_private_pkcs1(pem_text.expose())?;
        let pair = aws_lc_rs::rsa::KeyPair::from_der(&private_der)
            .map_err(|_| KeyFileError::BadKey("not a usable RSA key"))?;
        if pair.public_modulus_len() < 256 {
            return Err(KeyFileError::BadKey("RSA keys under 2048 bits are refused"));
        }
        let public_der = aws_lc_rs::signature::KeyPair::public_key(&pair).as_ref().to_vec();
        Ok(KeyFile {
            key_id,
            client_id,
            app_id,
            private_der,
            public_der,
            fingerprint: sha2::Sha256::digest(bytes).into(),
        })
    }

    pub fn encoding_key(&self) -> jsonwebtoken::EncodingKey {
        jsonwebtoken::EncodingKey::from_rsa_der(&self.private_der)
    }
}

/// PKCS#1 DER from a PEM that holds either PKCS#1 (`RSA PRIVATE KEY`, what ZITADEL writes) or PKCS#8 (`PRIVATE KEY`).
fn rsa_private_pkcs1(pem_text: &str) -> Result<Vec<u8>, KeyFileError> {
    let pem = pem::parse(pem_text).map_err(|_| KeyFileError::BadKey("no PEM block"))?;
    match pem.tag() {
        "RSA PRIVATE KEY" => Ok(pem.into_contents()),
        "PRIVATE KEY" => pkcs8_to_pkcs1(pem.contents()).ok_or(KeyFileError::BadKey("PKCS#8 without an RSA key")),
        _ => Err(KeyFileError::BadKey("the PEM block is not a private key")),
    }
}

/// The `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (version, algorithm, OCTET STRING key).
pub(crate) fn pkcs8_to_pkcs1(der: &[u8]) -> Option<Vec<u8>> {
    use simple_asn1::ASN1Block;
    let blocks = simple_asn1::from_der(der).ok()?;
    let Some(ASN1Block::Sequence(_, items)) = blocks.first() else {
        return None;
    };
    items.iter().find_map(|b| match b {
        ASN1Block::OctetString(_, bytes) => Some(bytes.clone()),
        _ => None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A fresh ZITADEL-shaped key file (RSA 2048, PKCS#1 PEM), as ZITADEL writes it.
    pub fn fixture(extra: Value) -> Vec<u8> {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8: Pkcs8V1Der = pair.as_der().unwrap();
        let pem = pem::encode(&pem::Pem::new(
            "RSA PRIVATE KEY",
            pkcs8_to_pkcs1(pkcs8.as_ref()).unwrap(),
        ));
        let mut v = json!({"type": "application", "keyId": "kid-1", "key": pem, "appId": "app-1", "clientId": "client-1@project"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in e {
                if val.is_null() {
                    o.remove(k);
                } else {
                    o.insert(k.clone(), val.clone());
                }
            }
        }
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn good_key_file() {
        let k = KeyFile::parse(&fixture(json!({}))).unwrap();
        assert_eq!(k.key_id, "kid-1");
        assert_eq!(k.client_id, "client-1@project");
        assert_eq!(k.app_id.as_deref(), Some("app-1"));
        assert!(!format!("{k:?}").contains("PRIVATE"));
    }

    #[test]
    fn old_client_id_spelling() {
        let k = KeyFile::parse(&fixture(json!({"clientId": null, "clientID": "old@project"}))).unwrap();
        assert_eq!(k.client_id, "old@project");
    }

    #[test]
    fn service_account_key_is_refused_with_reason() {
        let err = KeyFile::parse(&fixture(
            json!({"type": "serviceaccount", "userId": "u1", "clientId": null}),
        ))
        .unwrap_err();
        assert!(matches!(err, KeyFileError::ServiceAccount));
        assert!(err.to_string().contains("API application"));
    }

    #[test]
    fn broken_inputs_get_clear_errors_without_key_material() {
        let cases: Vec<(Vec<u8>, KeyFileError)> = vec![
            (b"not json".to_vec(), KeyFileError::NotJson),
            (b"[1]".to_vec(), KeyFileError::NotAnObject),
            (fixture(json!({"keyId": null})), KeyFileError::Missing("keyId")),
            (fixture(json!({"clientId": null})), KeyFileError::Missing("clientId")),
            (fixture(json!({"key": null})), KeyFileError::Missing("key")),
            (fixture(json!({"keyId": 5})), KeyFileError::WrongType("keyId")),
            (fixture(json!({"type": "other"})), KeyFileError::UnknownType),
            (
                fixture(json!({"key": "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"})),
                KeyFileError::BadKey("not a usable RSA key"),
            ),
            (
                fixture(json!({"key": "secret-looking-garbage"})),
                KeyFileError::BadKey("no PEM block"),
            ),
        ];
        for (input, want) in cases {
            let got = KeyFile::parse(&input).unwrap_err();
            assert_eq!(got.to_string(), want.to_string());
            assert!(!got.to_string().contains("secret-looking-garbage"));
        }
    }

    #[test]
    fn pkcs8_keys_are_accepted_too() {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        let k = KeyFile::parse(&fixture(json!({"key": pem}))).unwrap();
        assert_eq!(k.public_der, aws_lc_rs::signature::KeyPair::public_key(&pair).as_ref());
    }
}
