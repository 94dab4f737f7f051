//! Which headers of an HTTP check describe the original request, per proxy (`server.proxy`), and refusing every
//! check that could be read two ways. The reading itself (firewall, normalisation) is `crate::original`'s.
//!
//! Sources, per proxy:
//! - Envoy (`/verify/{path}`, path_prefix mode): the check's own method, the path after `/verify`, `Host`.
//! - Traefik, Caddy: `X-Forwarded-Method`, `X-Forwarded-Host`, `X-Forwarded-Uri`.
//! - nginx: `X-Original-Method`, `X-Original-URI`, `X-Forwarded-Host`; ingress-nginx: `X-Original-URL` (a full URL).
//!
//! No header "wins": proxies pass the client's own headers through, so a client behind Caddy could send
//! `X-Original-URI` and one behind nginx `X-Forwarded-Uri`. With `server.proxy = "auto"` every present source must
//! agree; a named proxy reads only its own and refuses checks that carry another's. A check on the Envoy prefix
//! path that also carries such headers is refused: that is nginx's `proxy_pass …/verify/?role=` slip, where the
//! operator's query would otherwise be dropped.

use actix_web::http::header::HeaderMap;

use crate::config::ProxyMode;
use crate::original::{OriginalRequest, Refusal, normalize_host, original_request as read};

/// Every header any proxy uses to describe the original request (Host aside).
const SOURCE_HEADERS: [&str; 5] = [
    "x-original-uri",
    "x-original-method",
    "x-original-url",
    "x-forwarded-uri",
    "x-forwarded-method",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginalError {
    #[error("conflicting original-request headers: {0}")]
    Conflict(&'static str),
    #[error("the check uses the /verify/… path and also carries {0}: refusing to choose between them")]
    Ambiguous(&'static str),
    #[error("{header} is not sent by {proxy} (server.proxy): refusing to read it")]
    NotThisProxy { header: &'static str, proxy: &'static str },
    #[error("{0} is not valid")]
    Invalid(&'static str),
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("no original URI: the proxy must send {0}")]
    NoUri(&'static str),
}

impl OriginalError {
    /// The proxy itself is set up wrongly (no client can cause this): 400. Everything else is a client-influenced
    /// request that cannot be read one way: 403, which every proxy passes on as a denial.
    pub fn is_misconfiguration(&self) -> bool {
        matches!(self, OriginalError::NoUri(_))
    }

    /// A machine-readable reason for logs.
    pub fn label(&self) -> &'static str {
        match self {
            OriginalError::Conflict(_) => "conflicting_sources",
            OriginalError::Ambiguous(_) => "ambiguous_sources",
            OriginalError::NotThisProxy { .. } => "foreign_source",
            OriginalError::Invalid(_) => "invalid_source",
            OriginalError::Refused(r) => r.label(),
            OriginalError::NoUri(_) => "no_original_uri",
        }
    }
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
fn agree<T: PartialEq>(candidates: Vec<Option<T>>, what: &'static str) -> Result<Option<T>, OriginalError> {
    let mut found: Option<T> = None;
    for c in candidates.into_iter().flatten() {
        match &found {
            Some(f) if *f != c => return Err(OriginalError::Conflict(what)),
            Some(_) => {}
            None => found = Some(c),
        }
    }
    Ok(found)
}

/// `http(s)://authority/path?query` split without resolving anything, so the path gets the same firewall as
/// every other source (a URL parser would quietly resolve `..` and turn `\` into `/`).
fn split_absolute(url: &str) -> Result<(&str, &str), Refusal> {
    let lower_scheme = |p: &str| url.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p));
    let rest = if lower_scheme("https://") {
        url.get(8..)
    } else if lower_scheme("http://") {
        url.get(7..)
    } else {
        None
    }
    .ok_or(Refusal::NotOriginForm)?;
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    if target.starts_with('\\') {
        return Err(Refusal::Backslash);
    }
    Ok((authority, if target.is_empty() { "/" } else { target }))
}

/// Refuses the check if any of `names` is present.
fn refuse_present(headers: &HeaderMap, names: &[&'static str], proxy: &'static str) -> Result<(), OriginalError> {
    match names.iter().find(|n| headers.contains_key(**n)) {
        Some(header) => Err(OriginalError::NotThisProxy { header, proxy }),
        None => Ok(()),
    }
}

/// `prefix`: on `/verify/{path}` (Envoy), the raw path and query after `/verify`.
pub fn original_request(
    mode: ProxyMode,
    check_method: &str,
    prefix: Option<&str>,
    headers: &HeaderMap,
    strict: bool,
) -> Result<OriginalRequest, OriginalError> {
    let host_header = || header(headers, "host");
    match mode {
        ProxyMode::Envoy => {
            refuse_present(headers, &SOURCE_HEADERS, mode.label())?;
            let target = prefix.ok_or(OriginalError::NoUri(
                "the original path after /verify (Envoy path_prefix)",
            ))?;
            Ok(read(check_method, host_header()?, target, strict)?)
        }
        ProxyMode::Auto if prefix.is_some() => {
            if let Some(h) = SOURCE_HEADERS.iter().find(|n| headers.contains_key(**n)) {
                return Err(OriginalError::Ambiguous(h));
            }
            let target = prefix.unwrap_or("/");
            Ok(read(check_method, host_header()?, target, strict)?)
        }
        _ if prefix.is_some() => Err(OriginalError::NotThisProxy {
            header: "the /verify/… path",
            proxy: mode.label(),
        }),
        ProxyMode::Nginx => {
            refuse_present(
                headers,
                &["x-forwarded-uri", "x-forwarded-method", "x-original-url"],
                mode.label(),
            )?;
            let uri = header(headers, "x-original-uri")?.ok_or(OriginalError::NoUri("X-Original-URI"))?;
            let method = header(headers, "x-original-method")?.unwrap_or(check_method);
            Ok(read(method, header(headers, "x-forwarded-host")?, uri, strict)?)
        }
        ProxyMode::Traefik | ProxyMode::Caddy => {
            refuse_present(
                headers,
                &["x-original-uri", "x-original-method", "x-original-url"],
                mode.label(),
            )?;
            let uri = header(headers, "x-forwarded-uri")?.ok_or(OriginalError::NoUri("X-Forwarded-Uri"))?;
            let method = header(headers, "x-forwarded-method")?.unwrap_or(check_method);
            Ok(read(method, header(headers, "x-forwarded-host")?, uri, strict)?)
        }
        ProxyMode::IngressNginx => {
            refuse_present(
                headers,
                &["x-original-uri", "x-forwarded-uri", "x-forwarded-method"],
                mode.label(),
            )?;
            let url = header(headers, "x-original-url")?.ok_or(OriginalError::NoUri("X-Original-URL"))?;
            let (authority, target) = split_absolute(url)?;
            let host = agree(
                vec![
                    Some(normalize_host(authority)?),
                    header(headers, "x-forwarded-host")?.map(normalize_host).transpose()?,
                ],
                "host",
            )?;
            let method = header(headers, "x-original-method")?.unwrap_or(check_method);
            Ok(read(method, host.as_deref(), target, strict)?)
        }
        ProxyMode::Auto => auto_from_headers(check_method, headers, strict),
    }
}

/// `server.proxy = "auto"` without the prefix path: every source present is read, and all must agree.
fn auto_from_headers(check_method: &str, headers: &HeaderMap, strict: bool) -> Result<OriginalRequest, OriginalError> {
    let url = header(headers, "x-original-url")?.map(split_absolute).transpose()?;
    let targets = [
        header(headers, "x-forwarded-uri")?,
        header(headers, "x-original-uri")?,
        url.map(|(_, target)| target),
    ];
    let method = agree(
        vec![
            header(headers, "x-forwarded-method")?,
            header(headers, "x-original-method")?,
        ],
        "method",
    )?
    .unwrap_or(check_method);
    let host = agree(
        vec![
            header(headers, "x-forwarded-host")?.map(normalize_host).transpose()?,
            url.map(|(authority, _)| normalize_host(authority)).transpose()?,
        ],
        "host",
    )?;
    // Each source is read on its own (so each gets the firewall), then the readings must be one.
    let mut found: Option<OriginalRequest> = None;
    for target in targets.into_iter().flatten() {
        let r = read(method, host.as_deref(), target, strict)?;
        match &mut found {
            Some(f) if f.path != r.path => return Err(OriginalError::Conflict("uri")),
            // Without the firewall, any source that needed repairs keeps anonymous rules away.
            Some(f) => f.suspicious |= r.suspicious,
            None => found = Some(r),
        }
    }
    found.ok_or(OriginalError::NoUri(
        "X-Original-URI (nginx), X-Forwarded-Uri (Traefik, Caddy) or X-Original-URL (ingress-nginx)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_headers as headers;

    fn auto(prefix: Option<&str>, pairs: &[(&str, &str)]) -> Result<OriginalRequest, OriginalError> {
        original_request(ProxyMode::Auto, "GET", prefix, &headers(pairs), true)
    }

    #[test]
    fn nginx_traefik_caddy_envoy_sources() {
        let nginx = auto(
            None,
            &[
                ("x-original-method", "POST"),
                ("x-original-uri", "/api/x?y=1"),
                ("x-forwarded-host", "App.Example.com:443"),
            ],
        )
        .unwrap();
        assert_eq!(
            (nginx.method.as_str(), nginx.host.as_deref(), nginx.path.as_str()),
            ("POST", Some("app.example.com"), "/api/x")
        );
        let traefik = auto(
            None,
            &[
                ("x-forwarded-method", "DELETE"),
                ("x-forwarded-uri", "/b"),
                ("x-forwarded-host", "h"),
            ],
        )
        .unwrap();
        assert_eq!((traefik.method.as_str(), traefik.path.as_str()), ("DELETE", "/b"));
        let ingress = auto(
            None,
            &[
                ("x-original-url", "https://shop.example.com/cart?id=1"),
                ("host", "tokengate:8080"),
            ],
        )
        .unwrap();
        assert_eq!(
            (ingress.host.as_deref(), ingress.path.as_str()),
            (Some("shop.example.com"), "/cart")
        );
        let envoy = original_request(
            ProxyMode::Auto,
            "PUT",
            Some("/api/items?x=1"),
            &headers(&[("host", "api.example.com")]),
            true,
        )
        .unwrap();
        assert_eq!(
            (envoy.method.as_str(), envoy.host.as_deref(), envoy.path.as_str()),
            ("PUT", Some("api.example.com"), "/api/items")
        );
    }

    #[test]
    fn the_prefix_path_with_proxy_headers_is_ambiguous() {
        for h in SOURCE_HEADERS {
            assert_eq!(
                auto(Some("/?role=admin"), &[(h, "/public/x")]),
                Err(OriginalError::Ambiguous(h)),
                "{h}"
            );
        }
    }

    #[test]
    fn disagreeing_sources_are_refused() {
        assert_eq!(
            auto(None, &[("x-original-uri", "/admin"), ("x-forwarded-uri", "/public/x")]),
            Err(OriginalError::Conflict("uri"))
        );
        assert!(auto(None, &[("x-original-uri", "/a/b"), ("x-forwarded-uri", "/a/b")]).is_ok());
        assert_eq!(
            auto(
                None,
                &[
                    ("x-original-method", "GET"),
                    ("x-forwarded-method", "POST"),
                    ("x-original-uri", "/")
                ]
            ),
            Err(OriginalError::Conflict("method"))
        );
        assert_eq!(
            auto(None, &[("x-original-uri", "/a"), ("x-original-uri", "/b")]),
            Err(OriginalError::Conflict("x-original-uri"))
        );
        assert_eq!(
            auto(
                None,
                &[
                    ("x-original-url", "http://a.example.com/x"),
                    ("x-forwarded-host", "b.example.com"),
                    ("x-original-uri", "/x")
                ]
            ),
            Err(OriginalError::Conflict("host"))
        );
    }

    #[test]
    fn every_source_gets_the_firewall() {
        let bad = [
            ("x-original-uri", "/public/..;/admin/x"),
            ("x-forwarded-uri", "/public/..;/admin/x"),
            ("x-original-uri", "http://h/admin/x"),
            ("x-original-url", "http://h/admin/%2e%2e/public/x"),
            ("x-original-url", "http://h/admin/../public/x"),
            ("x-original-url", "http://h\\admin/x"),
            ("x-original-url", "http://h/admin\\..\\public/x"),
            ("x-original-url", "ftp://h/x"),
            ("x-original-url", "http://user@h/x"),
        ];
        for (h, v) in bad {
            assert!(
                matches!(auto(None, &[(h, v)]), Err(OriginalError::Refused(_))),
                "{h}: {v}"
            );
        }
        assert!(matches!(
            auto(Some("/public/..;/admin/x"), &[]),
            Err(OriginalError::Refused(Refusal::Semicolon))
        ));
        let r = auto(None, &[("x-original-url", "http://Admin.Example.com.:80")]).unwrap();
        assert_eq!((r.host.as_deref(), r.path.as_str()), (Some("admin.example.com"), "/"));
    }

    #[test]
    fn a_named_proxy_reads_only_its_own_sources() {
        let nginx = |pairs: &[(&str, &str)]| original_request(ProxyMode::Nginx, "GET", None, &headers(pairs), true);
        assert!(nginx(&[("x-original-uri", "/a")]).is_ok());
        assert!(matches!(
            nginx(&[("x-original-uri", "/a"), ("x-forwarded-uri", "/a")]),
            Err(OriginalError::NotThisProxy { .. })
        ));
        assert_eq!(nginx(&[]), Err(OriginalError::NoUri("X-Original-URI")));
        assert!(matches!(
            original_request(
                ProxyMode::Nginx,
                "GET",
                Some("/"),
                &headers(&[("x-original-uri", "/a")]),
                true
            ),
            Err(OriginalError::NotThisProxy { .. })
        ));
        let caddy = original_request(
            ProxyMode::Caddy,
            "GET",
            None,
            &headers(&[("x-forwarded-uri", "/x"), ("host", "tokengate:8080")]),
            true,
        )
        .unwrap();
        assert_eq!(
            caddy.host, None,
            "Host is the auth service's own, never the original host"
        );
        assert!(matches!(
            original_request(
                ProxyMode::Traefik,
                "GET",
                None,
                &headers(&[("x-forwarded-uri", "/x"), ("x-original-uri", "/x")]),
                true
            ),
            Err(OriginalError::NotThisProxy { .. })
        ));
        let envoy =
            |prefix, pairs: &[(&str, &str)]| original_request(ProxyMode::Envoy, "GET", prefix, &headers(pairs), true);
        assert!(envoy(Some("/x"), &[("host", "a.example.com")]).is_ok());
        assert!(matches!(
            envoy(Some("/x"), &[("x-forwarded-uri", "/x")]),
            Err(OriginalError::NotThisProxy { .. })
        ));
        assert!(matches!(envoy(None, &[]), Err(OriginalError::NoUri(_))));
        let ingress =
            |pairs: &[(&str, &str)]| original_request(ProxyMode::IngressNginx, "GET", None, &headers(pairs), true);
        assert!(ingress(&[("x-original-url", "https://a.example.com/x")]).is_ok());
        assert!(matches!(
            ingress(&[("x-original-url", "https://a.example.com/x"), ("x-original-uri", "/x")]),
            Err(OriginalError::NotThisProxy { .. })
        ));
    }

    #[test]
    fn missing_uri_is_a_misconfiguration() {
        let e = auto(None, &[]).unwrap_err();
        assert!(e.is_misconfiguration());
        assert!(!OriginalError::Conflict("uri").is_misconfiguration());
    }
}
