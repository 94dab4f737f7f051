//! The request firewall and the original-request sources. Properties:
//! - under the strict firewall, an anonymous allow for `/public/**` means every way an application could read the
//!   path (decoded once or twice, `;` parameters stripped as Tomcat does, `\` as `/`, dot segments resolved, trailing
//!   dots dropped as IIS does, NFKC, any case) stays inside `/public`: no reading reaches a protected path;
//! - every source encoding of one path (X-Original-URI, X-Forwarded-Uri, X-Original-URL, Envoy's prefix path) gets
//!   the same answer;
//! - the firewall and the lenient normalisation are idempotent.
#![no_main]

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tokengate::config::ProxyMode;
use tokengate::http::original::original_request as from_headers;
use tokengate::original::{firewall, normalize_path, original_request};
use tokengate::policy::{Policy, Requirements, Rule, RuleAction, Selection};
use unicode_normalization::UnicodeNormalization;

fn policy() -> Policy {
    let paths = |p: &str| vec![p.to_string()];
    Policy {
        global: Requirements::default(),
        rules: vec![
            Rule::new("public".into(), &[], &[], &paths("/public/**"), RuleAction::Anonymous, false).unwrap(),
            Rule::new(
                "admin".into(),
                &[],
                &[],
                &paths("/admin/**"),
                RuleAction::Require(Requirements::new(vec![], vec![], vec!["admin".into()])),
                false,
            )
            .unwrap(),
        ],
        deny_unmatched: false,
    }
}

fn decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode(s.as_bytes())).into_owned()
}

fn percent_decode(b: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex))
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Dot segments resolved, empty segments merged.
fn resolve(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// What applications might route on.
fn app_readings(raw: &str) -> Vec<String> {
    let path = raw.split('?').next().unwrap_or("");
    let once = decode(path);
    let twice = decode(&once);
    let mut out = Vec::new();
    for text in [once, twice] {
        let nfkc: String = text.nfkc().collect();
        for t in [text.clone(), nfkc] {
            let slashes = t.replace('\\', "/");
            let no_params: String = slashes
                .split('/')
                .map(|seg| seg.split(';').next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("/");
            for v in [slashes, no_params] {
                let resolved = resolve(&v);
                let iis: String = resolved
                    .split('/')
                    .map(|seg| seg.trim_end_matches(['.', ' ']))
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(resolve(&iis).to_lowercase());
                out.push(resolved.to_lowercase());
            }
        }
    }
    out
}

fn in_public(reading: &str) -> bool {
    reading == "/public" || reading.starts_with("/public/")
}

fn headers(name: &'static str, value: &str) -> Option<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert(HeaderName::from_static(name), HeaderValue::from_str(value).ok()?);
    Some(h)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let text = text.trim();

    if let Ok(p) = firewall(text) {
        assert_eq!(firewall(&p), Ok(p.clone()), "firewall not idempotent: {text:?}");
    }
    let (n, _) = normalize_path(text);
    assert_eq!(normalize_path(&n).0, n, "normalisation not idempotent: {text:?}");

    let policy = policy();
    if let Ok(r) = original_request("GET", None, text, true)
        && matches!(policy.select(&r), Selection::Anonymous { .. })
    {
        for reading in app_readings(text) {
            assert!(in_public(&reading), "{text:?} allowed anonymously, but an application may read {reading:?}");
        }
    }

    // One path, every source: the same reading or the same refusal.
    let expected = original_request("GET", None, text, true).map(|r| r.path);
    let mut sources = vec![
        ("x-original-uri", headers("x-original-uri", text)),
        ("x-forwarded-uri", headers("x-forwarded-uri", text)),
    ];
    if text.starts_with('/') {
        sources.push(("x-original-url", headers("x-original-url", &format!("http://h{text}"))));
    }
    sources.retain(|(_, h)| h.is_some());
    for (name, h) in sources {
        let Some(h) = h else { continue };
        let got = from_headers(ProxyMode::Auto, "GET", None, &h, true).map(|r| r.path);
        assert_eq!(got.is_ok(), expected.is_ok(), "{name} disagrees on {text:?}: {got:?} vs {expected:?}");
        if let (Ok(a), Ok(b)) = (&got, &expected) {
            assert_eq!(a, b, "{name} reads {text:?} differently");
        }
    }
    if text.starts_with('/') {
        let got = from_headers(ProxyMode::Auto, "GET", Some(text), &HeaderMap::new(), true).map(|r| r.path);
        assert_eq!(got.ok(), expected.ok(), "the prefix path reads {text:?} differently");
    }
});
