//! A `CheckRequest` as the pipeline's `Check`: the original request from Envoy's structured attributes (read by
//! `crate::original`, the same firewall and normalisation as HTTP), the token from the headers (raw `header_map` or
//! the joined `headers` map), the route's `context_extensions` as extra requirements, and the client for the IdP's
//! fair share.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;

use crate::bearer::{Headers, MAX_HEADER_BYTES, TokenSources, extract_token};
use crate::client::{ClientAddress, client_key};
use crate::original::{Refusal, original_request};
use crate::pipeline::{Check, Door, DoorError, Malformed};
use crate::policy::{Requirements, is_scope_token};

/// Why a check request cannot be turned into a check. The text goes into the denied body and the log, so it never
/// quotes the client's input (an operator's context-extension key is quoted, cut short).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckRequestError {
    #[error("the check request carries no HTTP attributes (attributes.request.http)")]
    NoHttpAttributes,
    #[error("unknown context extension {0:?} (use scope and role)")]
    UnknownExtension(String),
    #[error("empty context extension {0}")]
    EmptyExtension(&'static str),
    #[error("context extension scope holds a character RFC 6749 does not allow in a scope")]
    BadScope,
    #[error("{0}")]
    Refused(#[from] Refusal),
}

impl DoorError for CheckRequestError {
    fn label(&self) -> &'static str {
        match self {
            CheckRequestError::NoHttpAttributes => "no_http_attributes",
            CheckRequestError::UnknownExtension(_)
            | CheckRequestError::EmptyExtension(_)
            | CheckRequestError::BadScope => "bad_context_extensions",
            CheckRequestError::Refused(r) => r.label(),
        }
    }
}

/// What the door needs from the configuration to read a check request.
#[derive(Debug, Clone)]
pub struct ReadSettings {
    /// `policy.strict_paths`.
    pub strict_paths: bool,
    pub token_sources: TokenSources,
    /// `server.client_address`.
    pub client_address: ClientAddress,
}

/// The request headers as Envoy sent them: each raw header on its own (`encode_raw_headers`), or the map whose
/// values Envoy joined with `,` for repeated names. Keys are lower case either way.
pub enum CheckHeaders<'a> {
    Raw(Vec<(&'a str, &'a [u8])>),
    Joined(&'a HashMap<String, String>),
}

impl<'a> CheckHeaders<'a> {
    pub fn of(http: &'a HttpRequest) -> CheckHeaders<'a> {
        match &http.header_map {
            Some(map) if !map.headers.is_empty() => CheckHeaders::Raw(
                map.headers
                    .iter()
                    .map(|h| {
                        // Envoy fills raw_value; `value` is the older spelling of the same field.
                        let value = if h.raw_value.is_empty() {
                            h.value.as_bytes()
                        } else {
                            h.raw_value.as_slice()
                        };
                        (h.key.as_str(), value)
                    })
                    .collect(),
            ),
            _ => CheckHeaders::Joined(&http.headers),
        }
    }

    /// Every header name, lower case as Envoy sends it.
    pub fn names(&self) -> Vec<&str> {
        match self {
            CheckHeaders::Raw(pairs) => pairs.iter().map(|(k, _)| *k).collect(),
            CheckHeaders::Joined(map) => map.keys().map(String::as_str).collect(),
        }
    }

    fn first_text(&self, name: &str) -> Option<&str> {
        self.values(name).next().and_then(|v| std::str::from_utf8(v).ok())
    }
}

impl Headers for CheckHeaders<'_> {
    fn values<'b>(&'b self, name: &str) -> impl Iterator<Item = &'b [u8]> {
        let (raw, joined) = match self {
            CheckHeaders::Raw(pairs) => (Some(pairs), None),
            CheckHeaders::Joined(map) => (None, map.get(name)),
        };
        let name = name.to_string();
        raw.into_iter()
            .flatten()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(&name))
            .map(|(_, v)| *v)
            .chain(joined.map(String::as_bytes))
    }

    fn total_bytes(&self) -> usize {
        match self {
            CheckHeaders::Raw(pairs) => pairs.iter().map(|(k, v)| k.len() + v.len() + 4).sum(),
            CheckHeaders::Joined(map) => map.iter().map(|(k, v)| k.len() + v.len() + 4).sum(),
        }
    }
}

/// `context_extensions` as requirements: `scope` (space-separated, all needed) and `role` (space-separated, any
/// one of them), as `?scope=` and `?role=` on the HTTP check URL. Any other key is refused, so that a typo in
/// Envoy's route config (`roles`) cannot silently drop a requirement.
pub fn extensions(ext: &HashMap<String, String>) -> Result<Requirements, CheckRequestError> {
    let mut scopes = Vec::new();
    let mut roles = Vec::new();
    // Sorted, so that the error for several bad keys does not depend on the map's order.
    let mut keys: Vec<&String> = ext.keys().collect();
    keys.sort();
    for key in keys {
        let value = ext.get(key).map_or("", String::as_str);
        let items: Vec<&str> = value.split(' ').filter(|s| !s.is_empty()).collect();
        match key.as_str() {
            "scope" => {
                if items.is_empty() {
                    return Err(CheckRequestError::EmptyExtension("scope"));
                }
                if !items.iter().all(|s| is_scope_token(s)) {
                    return Err(CheckRequestError::BadScope);
                }
                scopes.extend(items.iter().map(|s| s.to_string()));
            }
            "role" => {
                if items.is_empty() {
                    return Err(CheckRequestError::EmptyExtension("role"));
                }
                roles.extend(items.iter().map(|s| s.to_string()));
            }
            other => return Err(CheckRequestError::UnknownExtension(other.chars().take(64).collect())),
        }
    }
    Ok(Requirements::new(vec![], scopes, roles))
}

/// The downstream client's address as Envoy saw it (`attributes.source`), else the gRPC peer (Envoy itself).
fn source_address(req: &CheckRequest) -> Option<IpAddr> {
    let address = req.attributes.as_ref()?.source.as_ref()?.address.as_ref()?;
    match address.address.as_ref()? {
        AddressKind::SocketAddress(s) => s.address.parse().ok(),
        _ => None,
    }
}

/// The check request as the pipeline's `Check`; `peer` is the gRPC connection's remote address.
pub fn translate<'a>(
    req: &'a CheckRequest,
    headers: &'a CheckHeaders<'a>,
    settings: &ReadSettings,
    peer: Option<IpAddr>,
    started: Instant,
) -> Check<'a> {
    let client = client_key(
        settings.client_address,
        |name| headers.first_text(name),
        source_address(req).or(peer),
    );
    let check = |original, extra| Check {
        door: Door::Grpc,
        started,
        original,
        extra,
        token: extract_token(headers, &settings.token_sources),
        client,
    };
    let attributes = req.attributes.as_ref();
    let Some(http) = attributes
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
    else {
        log::error!("refusing check: {}", CheckRequestError::NoHttpAttributes);
        return check(
            Err(Malformed::BadCheck(Box::new(CheckRequestError::NoHttpAttributes))),
            Requirements::default(),
        );
    };
    if headers.total_bytes() > MAX_HEADER_BYTES {
        return check(Err(Malformed::HeadersTooLarge), Requirements::default());
    }
    let extra = match extensions(attributes.map_or(&HashMap::new(), |a| &a.context_extensions)) {
        Ok(r) => r,
        Err(e) => {
            log::error!("refusing check: {e}");
            return check(Err(Malformed::BadCheck(Box::new(e))), Requirements::default());
        }
    };
    // Envoy always sends the host (HTTP/1.1 Host or HTTP/2 :authority); an empty one means none.
    let host = Some(http.host.as_str()).filter(|h| !h.is_empty());
    // `path` is the client's path with its query: the query is the client's, so it never feeds requirements, and
    // `original_request` drops it after the firewall has read the path.
    let original = original_request(&http.method, host, &http.path, settings.strict_paths)
        .map(Some)
        .map_err(|r| {
            log::warn!("refusing check ({}): {r}", r.label());
            Malformed::Unreadable(Box::new(CheckRequestError::Refused(r)))
        });
    check(original, extra)
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::Request;

    use super::*;
    use crate::bearer::TokenError;

    fn settings() -> ReadSettings {
        ReadSettings {
            strict_paths: true,
            token_sources: TokenSources {
                header: Some("x-access-token".into()),
                cookie: Some("session".into()),
            },
            client_address: ClientAddress::Peer,
        }
    }

    fn request(http: HttpRequest, ext: &[(&str, &str)]) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(http),
                    ..Default::default()
                }),
                context_extensions: ext.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                ..Default::default()
            }),
        }
    }

    fn http(method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            host: host.into(),
            path: path.into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    fn raw(pairs: &[(&str, &[u8])]) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            host: "app.example.com".into(),
            path: "/".into(),
            header_map: Some(HeaderMap {
                headers: pairs
                    .iter()
                    .map(|(k, v)| HeaderValue {
                        key: k.to_string(),
                        raw_value: v.to_vec(),
                        ..Default::default()
                    })
                    .collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_original_request_comes_from_the_attributes_with_the_query_dropped() {
        let req = request(
            http("POST", "Admin.Example.com.:443", "/api/items?role=none&scope=x", &[]),
            &[],
        );
        let h = CheckHeaders::of(
            req.attributes
                .as_ref()
                .unwrap()
                .request
                .as_ref()
                .unwrap()
                .http
                .as_ref()
                .unwrap(),
        );
        let check = translate(&req, &h, &settings(), None, Instant::now());
        let original = check.original.unwrap().unwrap();
        assert_eq!(
            (
                original.method.as_str(),
                original.host.as_deref(),
                original.path.as_str()
            ),
            ("POST", Some("admin.example.com"), "/api/items")
        );
        assert!(check.extra.is_empty(), "the client's query is never a requirement");
        assert_eq!(check.door, Door::Grpc);
    }

    #[test]
    fn firewall_refusals_and_missing_attributes() {
        for path in ["/public/../admin", "/a%2fb", "/a;b/c", "//x", "/%2561dmin"] {
            let req = request(http("GET", "h", path, &[]), &[]);
            let h = CheckHeaders::of(
                req.attributes
                    .as_ref()
                    .unwrap()
                    .request
                    .as_ref()
                    .unwrap()
                    .http
                    .as_ref()
                    .unwrap(),
            );
            let check = translate(&req, &h, &settings(), None, Instant::now());
            assert!(
                matches!(check.original, Err(Malformed::Unreadable(_))),
                "{path}: {:?}",
                check.original
            );
        }
        let empty = CheckRequest::default();
        let none = HashMap::new();
        let h = CheckHeaders::Joined(&none);
        let check = translate(&empty, &h, &settings(), None, Instant::now());
        assert!(matches!(check.original, Err(Malformed::BadCheck(ref e)) if e.label() == "no_http_attributes"));
    }

    #[test]
    fn tokens_from_either_header_encoding_and_every_source() {
        let s = settings();
        let find = |http: HttpRequest| {
            let req = request(http, &[]);
            let h = CheckHeaders::of(
                req.attributes
                    .as_ref()
                    .unwrap()
                    .request
                    .as_ref()
                    .unwrap()
                    .http
                    .as_ref()
                    .unwrap(),
            );
            extract_token(&h, &s.token_sources).map(str::to_string)
        };
        assert_eq!(
            find(http("GET", "h", "/", &[("authorization", "Bearer abc")])),
            Ok("abc".into())
        );
        assert_eq!(find(raw(&[("authorization", b"Bearer raw")])), Ok("raw".into()));
        // Two Authorization headers: the raw form keeps them apart; the joined form makes one invalid token.
        assert_eq!(
            find(raw(&[("authorization", b"Bearer a"), ("authorization", b"Bearer b")])),
            Err(TokenError::Multiple)
        );
        assert_eq!(
            find(http("GET", "h", "/", &[("authorization", "Bearer a,Bearer b")])),
            Err(TokenError::BadCharacters)
        );
        assert_eq!(find(raw(&[("x-access-token", b"fromheader")])), Ok("fromheader".into()));
        assert_eq!(
            find(raw(&[("cookie", b"a=1; session=fromcookie")])),
            Ok("fromcookie".into())
        );
        assert_eq!(
            find(raw(&[("authorization", b"Bearer \xff")])),
            Err(TokenError::BadCharacters)
        );
        assert_eq!(find(raw(&[])), Err(TokenError::Missing));
    }

    #[test]
    fn context_extensions_table() {
        let ext =
            |pairs: &[(&str, &str)]| extensions(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        assert_eq!(ext(&[]), Ok(Requirements::default()));
        let r = ext(&[("scope", "read  write"), ("role", "admin ops")]).unwrap();
        assert_eq!(r.scopes, vec!["read", "write"]);
        assert_eq!(r.roles, vec![vec!["admin".to_string(), "ops".to_string()]]);
        assert_eq!(
            ext(&[("roles", "admin")]),
            Err(CheckRequestError::UnknownExtension("roles".into()))
        );
        assert_eq!(ext(&[("role", " ")]), Err(CheckRequestError::EmptyExtension("role")));
        assert_eq!(ext(&[("scope", "")]), Err(CheckRequestError::EmptyExtension("scope")));
        assert_eq!(ext(&[("scope", "a\"b")]), Err(CheckRequestError::BadScope));
    }

    #[test]
    fn oversized_headers_and_bad_extensions_are_malformed_checks() {
        let big = "x".repeat(MAX_HEADER_BYTES);
        let req = request(http("GET", "h", "/", &[("x-big", &big)]), &[]);
        let h = CheckHeaders::of(
            req.attributes
                .as_ref()
                .unwrap()
                .request
                .as_ref()
                .unwrap()
                .http
                .as_ref()
                .unwrap(),
        );
        assert!(matches!(
            translate(&req, &h, &settings(), None, Instant::now()).original,
            Err(Malformed::HeadersTooLarge)
        ));
        let req = request(http("GET", "h", "/", &[]), &[("scopes", "a")]);
        let h = CheckHeaders::of(
            req.attributes
                .as_ref()
                .unwrap()
                .request
                .as_ref()
                .unwrap()
                .http
                .as_ref()
                .unwrap(),
        );
        assert!(matches!(
            translate(&req, &h, &settings(), None, Instant::now()).original,
            Err(Malformed::BadCheck(_))
        ));
    }
}
