//! `Introspection::parse` on an IdP response body, and `TokenInfo::from_introspection` with the default header
//! mapping (taken from `config::load`, as the service builds it) on every active result.
#![no_main]

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use tokengate::config::{Sources, load};
use tokengate::token::{ClaimSource, HeaderRule, Introspection, RoleScope, TokenInfo};

fn mapping() -> &'static [HeaderRule] {
    static MAPPING: OnceLock<Vec<HeaderRule>> = OnceLock::new();
    MAPPING.get_or_init(|| {
        let env = HashMap::from([
            ("TOKENGATE_IDP__ISSUER".to_string(), "https://x".to_string()),
            ("TOKENGATE_IDP__KEY_FILE".to_string(), "/k".to_string()),
        ]);
        let config = load(&Sources {
            file: None,
            env: Some(env),
        })
        .expect("the default configuration loads");
        assert!(!config.headers.is_empty(), "the default configuration maps no headers");
        config.headers
    })
}

/// Every value of a top-level `"active"` member, duplicates included, in order; `None` when the body is not one
/// JSON object. Independent of how `serde_json::Map` resolves duplicate keys.
fn active_members(body: &[u8]) -> Option<Vec<Value>> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Option<Vec<Value>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("anything")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                if key == "active" {
                    found.push(map.next_value::<Value>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(Some(found))
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let members = de.deserialize_any(Members).ok()?;
    de.end().ok()?;
    members
}

fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
        || std::str::from_utf8(bytes).is_ok_and(|s| s.chars().any(char::is_control))
}

/// The documented claim-to-text rules, restated as an independent oracle (README "Identity headers"):
/// - scalars: strings as they are, numbers and booleans printed; null and objects nothing;
/// - `scope`: a space list, arrays: a comma list; a list item that is empty or holds `,` or whitespace is left out
///   and counted;
/// - a value with a control character, U+2028/U+2029 or leading/trailing whitespace is left out and counted.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list(items: Vec<String>, separator: &str, rejected: &mut u32) -> Option<String> {
    let mut kept = Vec::new();
    for item in items {
        if item.is_empty() || item.contains(',') || item.chars().any(char::is_whitespace) {
            *rejected += 1;
        } else {
            kept.push(item);
        }
    }
    (!kept.is_empty()).then(|| kept.join(separator))
}

fn claim_text(name: &str, v: &Value, rejected: &mut u32) -> Option<String> {
    match v {
        Value::String(s) if name == "scope" => list(
            s.split(' ').filter(|p| !p.is_empty()).map(str::to_string).collect(),
            " ",
            rejected,
        ),
        Value::Array(items) => list(items.iter().filter_map(scalar).collect(), ",", rejected),
        other => scalar(other),
    }
}

fn clean(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(char::is_whitespace)
        && !text.ends_with(char::is_whitespace)
        && !text.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

fuzz_target!(|data: &[u8]| {
    let parsed = Introspection::parse(data);
    let members = active_members(data);
    let Ok(i) = parsed else { return };
    let mapping = mapping();
    let scope = RoleScope::default();
    let info = TokenInfo::from_introspection(&i, mapping, &scope);
    assert_eq!(info.active, i.active);
    if !i.active {
        assert!(
            info.headers(mapping).next().is_none() && info.roles().next().is_none() && info.scopes().next().is_none(),
            "inactive with grants"
        );
        return;
    }
    // A grant needs `active` to be JSON `true`, unambiguously.
    let members = members.expect("granted, but the body is not one JSON object");
    assert!(!members.is_empty(), "granted without an `active` member");
    assert!(
        members.iter().all(|v| *v == Value::Bool(true)),
        "granted, but a top-level `active` member is not `true`: {members:?} (duplicate keys: the last one won)"
    );

    let headers: Vec<(String, Vec<u8>)> = info
        .headers(mapping)
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    for (name, value) in &headers {
        assert!(
            !has_control(value),
            "header {name} carries a control character: {:?}",
            String::from_utf8_lossy(value)
        );
        assert!(!value.is_empty(), "header {name} is empty");
    }

    // The compact TokenInfo gives back exactly what the introspection said.
    let roles = i.roles(&scope);
    assert!(
        info.roles().eq(roles.iter().map(String::as_str)),
        "roles changed in TokenInfo"
    );
    assert!(
        info.audience().eq(i.aud.iter().map(String::as_str)),
        "audience changed in TokenInfo"
    );
    let scopes = i.scope.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty());
    assert!(info.scopes().eq(scopes), "scopes changed in TokenInfo");
    let mut want = Vec::new();
    let mut rejected = 0;
    for rule in mapping {
        let text = match &rule.source {
            ClaimSource::Roles => list(roles.clone(), ",", &mut rejected),
            ClaimSource::Claims(names) => names
                .iter()
                .find_map(|n| Some((n, i.claims.get(n)?)))
                .and_then(|(n, v)| claim_text(n, v, &mut rejected)),
        };
        let Some(text) = text else { continue };
        if clean(&text) {
            want.push((rule.name.as_str().to_string(), text.into_bytes()));
        } else {
            rejected += 1;
        }
    }
    assert_eq!(headers, want, "identity headers differ from the claims");
    assert_eq!(info.rejected_headers, rejected, "rejected_headers miscounted");
});
