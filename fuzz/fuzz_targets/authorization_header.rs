//! `extract_token` and `parse_bearer` on header maps built from the fuzz input.
//!
//! Input: lines separated by `\n`; the first byte of a line picks the header name (`A` Authorization, `H`
//! X-Forwarded-Access-Token, `C` Cookie, anything else an unrelated header), the rest is the value. Values that
//! `HeaderValue::from_bytes` rejects are skipped, as actix-web would never hand them to us.
#![no_main]

use actix_web::http::header::{AUTHORIZATION, COOKIE, HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tokengate::bearer::{MAX_TOKEN_LEN, TokenError, TokenSources, extract_token, parse_bearer};

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn assert_b64token(token: &str, what: &str) {
    assert!(!token.is_empty(), "{what}: Ok with an empty token");
    assert!(
        token.len() <= MAX_TOKEN_LEN,
        "{what}: Ok with a {}-byte token",
        token.len()
    );
    let body = token.trim_end_matches('=');
    assert!(!body.is_empty(), "{what}: Ok with a token of only '=': {token:?}");
    assert!(
        body.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')),
        "{what}: Ok with a token outside RFC 6750 b64token: {token:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let sources = TokenSources {
        cookie: Some("access_token".into()),
        header: Some("x-forwarded-access-token".into()),
    };
    let other = HeaderName::from_static("x-other");
    let forwarded = HeaderName::from_static("x-forwarded-access-token");
    let mut headers = HeaderMap::new();
    let mut values = Vec::new();
    for line in data.split(|&b| b == b'\n').take(8) {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        let name = match selector {
            b'A' => AUTHORIZATION,
            b'H' => forwarded.clone(),
            b'C' => COOKIE,
            _ => other.clone(),
        };
        values.push(value.clone());
        headers.append(name, value);
    }

    for value in &values {
        if let Ok(token) = value.to_str().map_err(|_| TokenError::BadCharacters).and_then(parse_bearer) {
            assert_b64token(token, "parse_bearer");
            // The token is the value's tail: nothing is decoded or rebuilt.
            assert!(
                value.as_bytes().ends_with(token.as_bytes()),
                "parse_bearer: token is not the value's tail"
            );
        }
    }

    let result = extract_token(&headers, &sources);
    if let Ok(token) = result {
        assert_b64token(token, "extract_token");
        assert!(
            values.iter().any(|v| v.to_str().is_ok_and(|s| s.contains(token))),
            "extract_token: token {token:?} is in no header value"
        );
    }
    // A single Authorization header decides alone: a bad one is never skipped for another source.
    let auth: Vec<&HeaderValue> = headers.get_all(AUTHORIZATION).collect();
    if auth.len() == 1 {
        assert_eq!(
            result,
            auth[0].to_str().map_err(|_| TokenError::BadCharacters).and_then(parse_bearer),
            "extract_token differs from parse_bearer on the one Authorization"
        );
    }
    // Without configured sources only Authorization counts.
    let plain = extract_token(&headers, &TokenSources::default());
    if auth.is_empty() {
        assert_eq!(plain, Err(TokenError::Missing));
    } else {
        assert_eq!(plain, result, "the other sources changed an Authorization result");
    }
});
