//! Finding the bearer token among a request's headers, the same way for every front door: `Authorization: Bearer`
//! (scheme case-insensitive), then `token.header`, then `token.cookie`; a malformed Authorization header is an
//! error rather than a reason to look elsewhere.

/// RFC 6750 does not bound a token; 8 KiB is far above any JWT ZITADEL issues and bounds the work per check.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// All request headers of a check together; nginx's default (`large_client_header_buffers 4 8k`) is the same.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("the Authorization scheme is not Bearer")]
    WrongScheme,
    #[error("the bearer token is empty")]
    Empty,
    #[error("the bearer token has characters outside RFC 6750's b64token")]
    BadCharacters,
    #[error("the bearer token is longer than 8 KiB")]
    TooLong,
    #[error("more than one Authorization header")]
    Multiple,
}

/// `[token]`: where else a token may come from.
#[derive(Debug, Clone, Default)]
pub struct TokenSources {
    /// Lower case.
    pub header: Option<String>,
    pub cookie: Option<String>,
}

/// A request's headers as a door holds them: every value of a (lower-case) name, as bytes.
pub trait Headers {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]>;

    /// The total size of names and values, for `MAX_HEADER_BYTES`.
    fn total_bytes(&self) -> usize;
}

fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

fn check_token(t: &str) -> Result<&str, TokenError> {
    if t.is_empty() {
        Err(TokenError::Empty)
    } else if t.len() > MAX_TOKEN_LEN {
        Err(TokenError::TooLong)
    } else if !is_b64token(t) {
        Err(TokenError::BadCharacters)
    } else {
        Ok(t)
    }
}

fn text(value: &[u8]) -> Result<&str, TokenError> {
    std::str::from_utf8(value).map_err(|_| TokenError::BadCharacters)
}

/// `Bearer <token>`, scheme case-insensitive.
pub fn parse_bearer(value: &str) -> Result<&str, TokenError> {
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::WrongScheme);
    }
    check_token(rest.trim_start_matches(' '))
}

/// The token, tried in this order: `Authorization: Bearer`, then `token.header`, then `token.cookie`.
pub fn extract_token<'a, H: Headers>(headers: &'a H, sources: &TokenSources) -> Result<&'a str, TokenError> {
    let mut auth = headers.values("authorization");
    if let Some(first) = auth.next() {
        if auth.next().is_some() {
            return Err(TokenError::Multiple);
        }
        return parse_bearer(text(first)?);
    }
    if let Some(name) = &sources.header
        && let Some(v) = headers.values(name).next()
    {
        let value = text(v)?.trim();
        return match value.split_once(' ') {
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => parse_bearer(value),
            _ => check_token(value),
        };
    }
    if let Some(name) = &sources.cookie {
        for cookies in headers.values("cookie") {
            let Ok(line) = std::str::from_utf8(cookies) else {
                continue;
            };
            for pair in line.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=')
                    && k == name
                {
                    return check_token(v.trim_matches('"'));
                }
            }
        }
    }
    Err(TokenError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pairs(Vec<(String, Vec<u8>)>);

    impl Headers for Pairs {
        fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
            let name = name.to_ascii_lowercase();
            self.0
                .iter()
                .filter(move |(k, _)| *k == name)
                .map(|(_, v)| v.as_slice())
        }
        fn total_bytes(&self) -> usize {
            self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Pairs {
        Pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn token_extraction_table() {
        let none = TokenSources::default();
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        let max = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN));
        type Case<'a> = (Vec<(&'a str, &'a str)>, Result<&'a str, TokenError>);
        let cases: Vec<Case> = vec![
            (vec![], Err(TokenError::Missing)),
            (vec![("authorization", "Bearer abc.DEF-_~+/==")], Ok("abc.DEF-_~+/==")),
            (vec![("authorization", "bearer abc")], Ok("abc")),
            (vec![("authorization", "BEARER abc")], Ok("abc")),
            (
                vec![("authorization", "Basic dXNlcjpwdw==")],
                Err(TokenError::WrongScheme),
            ),
            (vec![("authorization", "Bearer")], Err(TokenError::Empty)),
            (vec![("authorization", "Bearer ")], Err(TokenError::Empty)),
            (vec![("authorization", "Bearer a b")], Err(TokenError::BadCharacters)),
            (vec![("authorization", "Bearer a\"b")], Err(TokenError::BadCharacters)),
            (vec![("authorization", "Bearer ==")], Err(TokenError::BadCharacters)),
            (vec![("authorization", "Bearer a=b")], Err(TokenError::BadCharacters)),
            (vec![("authorization", long.as_str())], Err(TokenError::TooLong)),
            (
                vec![("authorization", "Bearer a"), ("authorization", "Bearer b")],
                Err(TokenError::Multiple),
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(extract_token(&headers(&pairs), &none), want, "{pairs:?}");
        }
        let h = headers(&[("authorization", max.as_str())]);
        assert_eq!(extract_token(&h, &none).map(str::len), Ok(MAX_TOKEN_LEN));
        let invalid = Pairs(vec![("authorization".into(), b"Bearer \xff".to_vec())]);
        assert_eq!(extract_token(&invalid, &none), Err(TokenError::BadCharacters));
    }

    #[test]
    fn other_sources_in_order() {
        let sources = TokenSources {
            cookie: Some("access_token".into()),
            header: Some("x-forwarded-access-token".into()),
        };
        let h = headers(&[
            ("cookie", "a=1; access_token=fromcookie"),
            ("x-forwarded-access-token", "fromheader"),
        ]);
        assert_eq!(extract_token(&h, &sources), Ok("fromheader"));
        let h = headers(&[("cookie", "a=1; access_token=fromcookie")]);
        assert_eq!(extract_token(&h, &sources), Ok("fromcookie"));
        let h = headers(&[
            ("authorization", "Bearer fromauth"),
            ("x-forwarded-access-token", "fromheader"),
        ]);
        assert_eq!(extract_token(&h, &sources), Ok("fromauth"));
        let h = headers(&[("authorization", "Basic x"), ("x-forwarded-access-token", "fromheader")]);
        assert_eq!(
            extract_token(&h, &sources),
            Err(TokenError::WrongScheme),
            "a bad Authorization is not skipped"
        );
        let h = headers(&[("cookie", "other=1")]);
        assert_eq!(extract_token(&h, &sources), Err(TokenError::Missing));
        let h = headers(&[("x-forwarded-access-token", "Bearer viaheader")]);
        assert_eq!(extract_token(&h, &sources), Ok("viaheader"));
        assert_eq!(
            extract_token(&h, &TokenSources::default()),
            Err(TokenError::Missing),
            "sources are opt-in"
        );
    }

    #[test]
    fn parse_bearer_is_what_the_cli_uses_too() {
        assert_eq!(parse_bearer("bearer abc"), Ok("abc"));
        assert_eq!(parse_bearer("abc"), Err(TokenError::WrongScheme));
    }
}
