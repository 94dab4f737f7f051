//! The RFC 7662 introspection response, parsed strictly: a grant needs `active: true` as a JSON boolean, claims of
//! the wrong type invalidate the whole response, and duplicate members are refused.

use serde_json::{Map, Value};

use super::error::InvalidResponse;
use super::roles::RoleScope;

/// An introspection response that passed strict parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct Introspection {
    pub active: bool,
    pub exp: Option<u64>,
    pub aud: Vec<String>,
    pub scope: Option<String>,
    /// Every member of the response, for the header mapping and `tokengate introspect`.
    pub claims: Map<String, Value>,
}

/// A JSON object that refuses duplicate members. serde_json's map keeps the last of them, so
/// `{"active":false,"active":true}` would read as a grant; a strict parser must not pick one.
struct StrictObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for StrictObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = StrictObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&k) {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                    map.insert(k, v);
                }
                Ok(StrictObject(map))
            }
        }
        d.deserialize_map(Visit)
    }
}

impl Introspection {
    /// Strict: a grant needs `active: true` as a JSON boolean; `exp`, `aud` and `scope` of the wrong type make the
    /// whole response invalid rather than being skipped, because skipping them could widen access.
    pub fn parse(body: &[u8]) -> Result<Introspection, InvalidResponse> {
        let claims = match serde_json::from_slice::<StrictObject>(body) {
            Ok(StrictObject(claims)) => claims,
            Err(e) if e.to_string().starts_with("duplicate member") => return Err(InvalidResponse::DuplicateMember),
            Err(_) => return Err(InvalidResponse::NotAnObject),
        };
        let active = match claims.get("active") {
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(InvalidResponse::ActiveNotBoolean),
            None => return Err(InvalidResponse::MissingActive),
        };
        if !active {
            return Ok(Introspection {
                active: false,
                exp: None,
                aud: vec![],
                scope: None,
                claims: Map::new(),
            });
        }
        let exp = match claims.get("exp") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                (Some(u), _) => Some(u),
                (None, Some(f)) if f.is_finite() && f >= 0.0 => Some(f as u64),
                _ => return Err(InvalidResponse::WrongType("exp")),
            },
            Some(_) => return Err(InvalidResponse::WrongType("exp")),
        };
        let aud = match claims.get("aud") {
            None | Some(Value::Null) => vec![],
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(InvalidResponse::WrongType("aud"))?,
            Some(_) => return Err(InvalidResponse::WrongType("aud")),
        };
        let scope = match claims.get("scope") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(InvalidResponse::WrongType("scope")),
        };
        Ok(Introspection {
            active,
            exp,
            aud,
            scope,
            claims,
        })
    }

    /// The role names that count under `scope` (see `RoleScope`), sorted and without duplicates. A claim or role
    /// value that is not an object grants nothing.
    pub fn roles(&self, scope: &RoleScope) -> Vec<String> {
        let mut roles: Vec<String> = self
            .claims
            .iter()
            .filter(|(k, _)| scope.counts(k))
            .filter_map(|(_, v)| v.as_object())
            .flat_map(|o| o.iter())
            .filter(|(_, grant)| scope.org_matches(grant))
            .map(|(role, _)| role.clone())
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Introspection, InvalidResponse> {
        Introspection::parse(v.to_string().as_bytes())
    }

    #[test]
    fn strict_parsing_table() {
        use InvalidResponse::*;
        let cases: Vec<(Value, Result<bool, InvalidResponse>)> = vec![
            (json!({"active": true}), Ok(true)),
            (json!({"active": false}), Ok(false)),
            (json!({"active": false, "exp": "garbage"}), Ok(false)),
            (json!({}), Err(MissingActive)),
            (json!({"active": "true"}), Err(ActiveNotBoolean)),
            (json!({"active": 1}), Err(ActiveNotBoolean)),
            (json!({"active": null}), Err(ActiveNotBoolean)),
            (json!([{"active": true}]), Err(NotAnObject)),
            (json!({"active": true, "exp": "1700000000"}), Err(WrongType("exp"))),
            (json!({"active": true, "exp": -5}), Err(WrongType("exp"))),
            (json!({"active": true, "exp": 1.7e9}), Ok(true)),
            (json!({"active": true, "aud": 5}), Err(WrongType("aud"))),
            (json!({"active": true, "aud": ["a", 5]}), Err(WrongType("aud"))),
            (json!({"active": true, "aud": "a"}), Ok(true)),
            (json!({"active": true, "scope": ["a"]}), Err(WrongType("scope"))),
        ];
        // Found by fuzzing: with duplicate members the last one would win.
        for dup in [
            r#"{"active":false,"active":true}"#,
            r#"{"active":2,"active":true}"#,
            r#"{"active":true,"exp":1,"exp":9999999999}"#,
        ] {
            assert_eq!(Introspection::parse(dup.as_bytes()), Err(DuplicateMember), "{dup}");
        }
        for (body, want) in cases {
            assert_eq!(parse(body.clone()).map(|i| i.active), want, "body {body}");
        }
        assert_eq!(Introspection::parse(b"<html>"), Err(NotAnObject));
        assert_eq!(Introspection::parse(b""), Err(NotAnObject));
    }

    #[test]
    fn roles_count_only_for_the_pinned_project_and_organisation() {
        let i = parse(json!({
            "active": true,
            "urn:zitadel:iam:org:project:roles": {"viewer": {"1": "a.example.com"}},
            "urn:zitadel:iam:org:project:300:roles": {"viewer": {"1": "a.example.com"}, "ops": {"2": "b.example.com"}},
            "urn:zitadel:iam:org:project:999999999:roles": {"admin": {"1": "a.example.com"}},
            "urn:zitadel:iam:org:project:300:other": {"nope": {"1": "x"}},
            "urn:zitadel:iam:org:project::roles": {"empty-id": {"1": "x"}},
        }))
        .unwrap();
        let scope = |project: Option<&str>, org: Option<&str>| RoleScope {
            project_id: project.map(str::to_string),
            org_id: org.map(str::to_string),
        };
        let roles = |s: RoleScope| i.roles(&s);
        assert_eq!(
            roles(scope(None, None)),
            vec!["viewer"],
            "no pin: the generic claim only"
        );
        assert_eq!(roles(scope(Some("300"), None)), vec!["ops", "viewer"]);
        assert_eq!(roles(scope(Some("999999999"), None)), vec!["admin"]);
        assert_eq!(roles(scope(Some("12"), None)), Vec::<String>::new());
        assert_eq!(roles(scope(Some("300"), Some("2"))), vec!["ops"]);
        assert_eq!(roles(scope(None, Some("2"))), Vec::<String>::new());
        let odd =
            parse(json!({"active": true, "urn:zitadel:iam:org:project:roles": {"admin": "not-an-object"}})).unwrap();
        assert_eq!(odd.roles(&scope(None, Some("1"))), Vec::<String>::new());
        assert_eq!(odd.roles(&scope(None, None)), vec!["admin"]);
    }
}
