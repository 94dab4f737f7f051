//! Rebuilding the request being authorised from what each proxy sends, and normalising its path so that rules
//! cannot be dodged with `..`, encoded slashes or backslashes. Pure: headers in, `OriginalRequest` out.
//!
//! Sources, per proxy:
//! - Envoy (`/verify/{path}`, path_prefix mode): the check's own method, the path after `/verify`, `Host`.
//! - Traefik, Caddy: `X-Forwarded-Method`, `X-Forwarded-Host`, `X-Forwarded-Uri`.
//! - nginx: `X-Original-Method`, `X-Original-URI`; ingress-nginx: `X-Original-URL` (a full URL).
//!
//! No header "wins": the proxy in front passes the client's own headers through, so a client behind Caddy could
//! send `X-Original-URI` and one behind nginx `X-Forwarded-Uri`. When several sources are present and disagree,
//! the check is refused (400) instead of trusting either.

use actix_web::http::header::HeaderMap;

use crate::policy::OriginalRequest;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginalError {
    #[error("conflicting original-request headers: {0}")]
    Conflict(&'static str),
    #[error("{0} is not valid")]
    Invalid(&'static str),
    #[error("no original URI: the proxy must send X-Original-URI (nginx) or X-Forwarded-Uri (Traefik, Caddy)")]
    NoUri,
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, OriginalError> {
    let mut values = headers.get_all(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OriginalError::Conflict(name));
    }
    first
        .to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| OriginalError::Invalid(name))
}

/// All present values must agree; the first present one is returned.
fn agree(candidates: &[Option<String>], what: &'static str) -> Result<Option<String>, OriginalError> {
    let mut found: Option<&String> = None;
    for c in candidates.iter().flatten() {
        match found {
            Some(f) if f != c => return Err(OriginalError::Conflict(what)),
            _ => found = Some(c),
        }
    }
    Ok(found.cloned())
}

fn host_only(raw: &str) -> String {
    let raw = raw.trim().to_ascii_lowercase();
    // `[::1]:8080`, `example.com:443`, `example.com`.
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    raw.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(raw.clone(), |(h, _)| h.to_string())
}

/// `prefix_path`: on `/verify/{path}` (Envoy), the raw path and query after `/verify`.
pub fn original_request(
    check_method: &str,
    prefix_path: Option<&str>,
    headers: &HeaderMap,
    uri_required: bool,
) -> Result<OriginalRequest, OriginalError> {
    if let Some(path) = prefix_path {
        let (path, suspicious) = normalize_path(path);
        return Ok(OriginalRequest {
            method: check_method.to_ascii_uppercase(),
            host: header(headers, "host")?.map(host_only),
            path,
            suspicious,
        });
    }
    let url = match header(headers, "x-original-url")? {
        Some(raw) => Some(url::Url::parse(raw).map_err(|_| OriginalError::Invalid("x-original-url"))?),
        None => None,
    };
    let method = agree(
        &[
            header(headers, "x-forwarded-method")?.map(str::to_ascii_uppercase),
            header(headers, "x-original-method")?.map(str::to_ascii_uppercase),
        ],
        "method",
    )?
    .unwrap_or_else(|| check_method.to_ascii_uppercase());
    let uri = agree(
        &[
            header(headers, "x-forwarded-uri")?.map(|u| normalize_path(u).0),
            header(headers, "x-original-uri")?.map(|u| normalize_path(u).0),
            url.as_ref().map(|u| normalize_path(u.path()).0),
        ],
        "uri",
    )?;
    let raw_uri = header(headers, "x-forwarded-uri")?
        .or(header(headers, "x-original-uri")?)
        .map(str::to_string)
        .or_else(|| url.as_ref().map(|u| u.path().to_string()));
    let host = agree(
        &[
            header(headers, "x-forwarded-host")?.map(host_only),
            url.as_ref().and_then(|u| u.host_str()).map(host_only),
        ],
        "host",
    )?
    .or_else(|| header(headers, "host").ok().flatten().map(host_only));
    let (path, suspicious) = match (uri, raw_uri) {
        (Some(_), Some(raw)) => normalize_path(&raw),
        _ if uri_required => return Err(OriginalError::NoUri),
        // Unknown path: no path rule can match, and anonymous rules never do.
        _ => (String::new(), true),
    };
    Ok(OriginalRequest {
        method,
        host,
        path,
        suspicious,
    })
}

/// The path without query, percent-decoded, with `.`/`..` resolved and repeated slashes merged. The flag says the
/// raw path needed repairs an honest client never needs, so that anonymous rules can refuse it.
pub fn normalize_path(raw: &str) -> (String, bool) {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    let lower = path.to_ascii_lowercase();
    let mut suspicious = lower.contains("%2f") || lower.contains("%5c") || lower.contains("%25") || path.contains('\\');
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    let text = match String::from_utf8(decoded) {
        Ok(t) => t,
        Err(e) => {
            suspicious = true;
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    };
    if text.chars().any(char::is_control) {
        suspicious = true;
    }
    let text = text.replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        match seg {
            "" => {}
            "." => suspicious = true,
            ".." => {
                suspicious = true;
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut result = format!("/{}", out.join("/"));
    if text.ends_with('/') && !out.is_empty() {
        result.push('/');
    }
    // Decoded `?`, `#` and `%` go back to their escapes: normalising twice gives the same path, and the result can
    // never be mistaken for a query, a fragment or another escape.
    if result.contains(['?', '#', '%']) {
        suspicious = true;
        result = result.replace('%', "%25").replace('?', "%3F").replace('#', "%23");
    }
    (result, suspicious)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_headers as headers;

    #[test]
    fn path_normalisation() {
        let cases = [
            ("/api/users?x=1", "/api/users", false),
            ("/public/../api/admin", "/api/admin", true),
            ("/public/%2e%2e/api/admin", "/api/admin", true),
            ("/public%2F..%2Fadmin", "/admin", true),
            ("/a//b/", "/a/b/", false),
            ("/a/./b", "/a/b", true),
            ("/a\\..\\b", "/b", true),
            ("/caf%C3%A9", "/caf\u{e9}", false),
            ("/%ff", "/\u{fffd}", true),
            ("", "/", false),
            ("/../../etc", "/etc", true),
            // Found by fuzzing: these used to decode to `?`/`#`/`%` and change on a second pass.
            ("%3F", "/%3F", true),
            ("/a%23b", "/a%23b", true),
            ("/p/x%2e%2e%3Fadmin", "/p/x..%3Fadmin", true),
            ("/100%25", "/100%25", true),
        ];
        for (raw, want, sus) in cases {
            assert_eq!(normalize_path(raw), (want.to_string(), sus), "{raw}");
            assert_eq!(normalize_path(want).0, want, "idempotent: {raw}");
        }
    }

    #[test]
    fn nginx_traefik_caddy_envoy_sources() {
        let nginx = original_request(
            "GET",
            None,
            &headers(&[
                ("x-original-method", "post"),
                ("x-original-uri", "/api/x?y=1"),
                ("x-forwarded-host", "App.Example.com:443"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(
            (nginx.method.as_str(), nginx.host.as_deref(), nginx.path.as_str()),
            ("POST", Some("app.example.com"), "/api/x")
        );
        let traefik = original_request(
            "GET",
            None,
            &headers(&[
                ("x-forwarded-method", "DELETE"),
                ("x-forwarded-uri", "/b"),
                ("x-forwarded-host", "h"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!((traefik.method.as_str(), traefik.path.as_str()), ("DELETE", "/b"));
        let ingress = original_request(
            "GET",
            None,
            &headers(&[
                ("x-original-url", "https://shop.example.com/cart?id=1"),
                ("host", "tokengate:8080"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(
            (ingress.host.as_deref(), ingress.path.as_str()),
            (Some("shop.example.com"), "/cart")
        );
        let envoy = original_request(
            "put",
            Some("/api/items?x=1"),
            &headers(&[("host", "api.example.com"), ("x-original-uri", "/public/spoof")]),
            true,
        )
        .unwrap();
        assert_eq!(
            (envoy.method.as_str(), envoy.host.as_deref(), envoy.path.as_str()),
            ("PUT", Some("api.example.com"), "/api/items"),
            "Envoy's path wins over client headers"
        );
    }

    #[test]
    fn disagreeing_sources_are_refused() {
        let spoof = headers(&[("x-original-uri", "/admin"), ("x-forwarded-uri", "/public/x")]);
        assert_eq!(
            original_request("GET", None, &spoof, true),
            Err(OriginalError::Conflict("uri"))
        );
        let agreeing = headers(&[("x-original-uri", "/a/b"), ("x-forwarded-uri", "/a//b")]);
        assert!(original_request("GET", None, &agreeing, true).is_ok());
        let methods = headers(&[
            ("x-original-method", "GET"),
            ("x-forwarded-method", "POST"),
            ("x-original-uri", "/"),
        ]);
        assert_eq!(
            original_request("GET", None, &methods, true),
            Err(OriginalError::Conflict("method"))
        );
        let twice = headers(&[("x-original-uri", "/a"), ("x-original-uri", "/b")]);
        assert_eq!(
            original_request("GET", None, &twice, true),
            Err(OriginalError::Conflict("x-original-uri"))
        );
    }

    #[test]
    fn missing_uri_is_refused_only_when_rules_need_it() {
        assert_eq!(
            original_request("GET", None, &headers(&[]), true),
            Err(OriginalError::NoUri)
        );
        let r = original_request("GET", None, &headers(&[]), false).unwrap();
        assert!(r.suspicious);
    }
}
