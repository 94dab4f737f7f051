//! Writes key-file seeds holding a fresh throwaway RSA-2048 key (it signs nothing) into the gitignored corpus
//! `fuzz/corpus/key_file/`, so that no private key is committed. `fuzz/run` calls it before the key_file target.
//! By hand: `cargo run --manifest-path fuzz/Cargo.toml --example gen_key_seeds`.

use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/key_file");
    std::fs::create_dir_all(&dir).unwrap();
    let app = tokengate::dev_idp::generate_app_key("1", "2", "3@4").unwrap();
    std::fs::write(dir.join("zitadel_application.json"), &app).unwrap();

    let mut v: serde_json::Value = serde_json::from_str(&app).unwrap();
    let o = v.as_object_mut().unwrap();
    // A machine-user key as ZITADEL writes it: refused with its own message.
    o.insert("type".into(), "serviceaccount".into());
    o.remove("clientId");
    o.remove("appId");
    o.insert("userId".into(), "5".into());
    std::fs::write(dir.join("zitadel_serviceaccount.json"), v.to_string()).unwrap();

    // The key's DER alone: the target also wraps its input as a PEM body, so this reaches the RSA parser.
    let pem = pem::parse(
        serde_json::from_str::<serde_json::Value>(&app).unwrap()["key"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("rsa_pkcs1.der"), pem.contents()).unwrap();
    println!("wrote seeds to {}", dir.display());
}
