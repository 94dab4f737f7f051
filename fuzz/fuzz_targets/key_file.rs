//! `KeyFile::parse` must never panic, whatever the bytes. Beyond the raw input (JSON seeds), the input is also
//! wrapped as the DER body of an `RSA PRIVATE KEY` and a `PRIVATE KEY` PEM block inside an otherwise valid key file,
//! so that the PEM, PKCS#8 (simple_asn1) and aws-lc RSA parsers see fuzzed DER, which mutation of the JSON alone
//! would almost never produce.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::token::introspect::keyfile::KeyFile;

fn wrapped(tag: &str, der: &[u8]) -> Vec<u8> {
    let pem = pem::encode(&pem::Pem::new(tag, der.to_vec()));
    serde_json::json!({"type": "application", "keyId": "1", "appId": "2", "clientId": "3@4", "key": pem})
        .to_string()
        .into_bytes()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = KeyFile::parse(data) {
        assert!(!k.key_id.is_empty() && !k.client_id.is_empty());
        assert!(!k.public_der.is_empty());
    }
    for tag in ["RSA PRIVATE KEY", "PRIVATE KEY"] {
        if let Ok(k) = KeyFile::parse(&wrapped(tag, data)) {
            assert!(!k.public_der.is_empty());
        }
    }
});
