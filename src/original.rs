//! The request being authorised, read one way for every front door: the strict path firewall, path, host and
//! method normalisation. Pure: text in, an `OriginalRequest` or a `Refusal` out.
//!
//! The principle: where tokengate and the servers behind the proxy could read one request differently (path
//! parameters, encodings, dot segments, case, Unicode look-alikes, trailing dots in hosts), tokengate refuses the
//! request or applies the strictest rule any reading selects. It never picks the reading that grants more.

use unicode_normalization::UnicodeNormalization;

/// The request the proxy is asking about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRequest {
    /// As the client sent it (HTTP methods are case-sensitive); only RFC 9110 token characters.
    pub method: String,
    /// Lower case, without port or trailing dot; `None` when the proxy did not say.
    pub host: Option<String>,
    /// Percent-decoded, no query; with `policy.strict_paths` it needed no repairs.
    pub path: String,
    /// The path NFKC-normalised, when that differs: applications that normalise Unicode read this one.
    pub nfkc_path: Option<String>,
    /// The raw path needed repairs (only without `policy.strict_paths`): anonymous rules never match it.
    pub suspicious: bool,
}

impl OriginalRequest {
    /// Every reading of the path a server behind the proxy might route on: as decoded, without a trailing slash
    /// (most routers treat `/admin/` and `/admin` alike) and NFKC-normalised. Rules that require something match
    /// if any reading matches; anonymous rules only see `path` itself.
    pub fn path_readings(&self) -> impl Iterator<Item = &str> {
        let trimmed = self.path.trim_end_matches('/');
        let trimmed = (!trimmed.is_empty() && trimmed.len() != self.path.len()).then_some(trimmed);
        std::iter::once(self.path.as_str())
            .chain(trimmed)
            .chain(self.nfkc_path.as_deref())
    }
}

/// Why a request cannot be read one way. The text goes into the 403 body and the log, so it never quotes input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the path is not in origin form (it must start with '/')")]
    NotOriginForm,
    #[error("the path contains ';' (path parameters are read differently by different servers)")]
    Semicolon,
    #[error("the path contains an encoded '/', '\\' or '.'")]
    EncodedSeparator,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path is percent-encoded twice (%25)")]
    DoubleEncoding,
    #[error("the path contains a control character")]
    Control,
    #[error("the path contains a character that is not allowed in a request path")]
    BadCharacter,
    #[error("the path contains a dot segment or a segment ending in '.'")]
    DotSegment,
    #[error("the path contains an empty segment ('//')")]
    EmptySegment,
    #[error("the path contains characters that Unicode-normalise to '.', '/', '\\', ';' or '%'")]
    UnicodeLookalike,
    #[error("the path has an invalid percent-encoding or is not UTF-8")]
    BadEncoding,
    #[error("the host is not a valid host name")]
    BadHost,
    #[error("the method is not a valid HTTP method")]
    BadMethod,
}

impl Refusal {
    /// A machine-readable reason, for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NotOriginForm => "path_not_origin_form",
            Refusal::Semicolon => "path_semicolon",
            Refusal::EncodedSeparator => "path_encoded_separator",
            Refusal::Backslash => "path_backslash",
            Refusal::DoubleEncoding => "path_double_encoding",
            Refusal::Control => "path_control_character",
            Refusal::BadCharacter => "path_bad_character",
            Refusal::DotSegment => "path_dot_segment",
            Refusal::EmptySegment => "path_empty_segment",
            Refusal::UnicodeLookalike => "path_unicode_lookalike",
            Refusal::BadEncoding => "path_bad_encoding",
            Refusal::BadHost => "bad_host",
            Refusal::BadMethod => "bad_method",
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The characters an NFKC-normalising application could turn into a separator, a parameter or an escape.
fn is_lookalike(c: char) -> bool {
    !c.is_ascii()
        && std::iter::once(c)
            .nfkc()
            .any(|n| matches!(n, '.' | '/' | '\\' | ';' | '%'))
}

/// The strict firewall on a raw path (query already removed). On success the decoded path: no repairs were needed,
/// so every server reads it the same way.
pub fn firewall(raw: &str) -> Result<String, Refusal> {
    if !raw.starts_with('/') {
        return Err(Refusal::NotOriginForm);
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let byte = if b == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(Refusal::BadEncoding);
            };
            i += 3;
            match h * 16 + l {
                b'/' | b'\\' | b'.' => return Err(Refusal::EncodedSeparator),
                b'%' => return Err(Refusal::DoubleEncoding),
                d => d,
            }
        } else {
            i += 1;
            b
        };
        match byte {
            b';' => return Err(Refusal::Semicolon),
            b'\\' => return Err(Refusal::Backslash),
            0..=0x1f | 0x7f => return Err(Refusal::Control),
            // A fragment or whitespace inside a request target: never sent by an honest client.
            b'#' | b' ' if b != b'%' => return Err(Refusal::BadCharacter),
            _ => {}
        }
        decoded.push(byte);
    }
    let text = String::from_utf8(decoded).map_err(|_| Refusal::BadEncoding)?;
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            return Err(Refusal::Control);
        }
        if is_lookalike(c) {
            return Err(Refusal::UnicodeLookalike);
        }
    }
    let body = text.strip_prefix('/').unwrap_or(&text);
    let segments: Vec<&str> = body.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (index, seg) in segments.iter().enumerate() {
        if seg.is_empty() {
            // `/` alone and one trailing slash are ordinary; an empty segment anywhere else is `//`.
            if index == last {
                continue;
            }
            return Err(Refusal::EmptySegment);
        }
        if seg.ends_with('.') {
            return Err(Refusal::DotSegment);
        }
    }
    Ok(escape_delimiters(text))
}

/// Decoded `?` and `#` go back to their escapes, so the path can never be mistaken for a query or fragment and
/// reading it twice gives the same result.
fn escape_delimiters(text: String) -> String {
    if text.contains(['?', '#', '%']) {
        text.replace('%', "%25").replace('?', "%3F").replace('#', "%23")
    } else {
        text
    }
}

/// The lenient reading (`policy.strict_paths = false`): percent-decoded, `.`/`..` resolved, repeated slashes
/// merged. The flag says the raw path needed repairs an honest client never needs.
pub fn normalize_path(raw: &str) -> (String, bool) {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    let lower = path.to_ascii_lowercase();
    let mut suspicious = lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%25")
        || lower.contains("%2e")
        || path.contains(['\\', ';']);
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    let text = match String::from_utf8(decoded) {
        Ok(t) => t,
        Err(e) => {
            suspicious = true;
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    };
    if text.chars().any(|c| c.is_control() || is_lookalike(c)) {
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
            s => {
                if s.ends_with('.') || s.contains(';') {
                    suspicious = true;
                }
                out.push(s)
            }
        }
    }
    let mut result = format!("/{}", out.join("/"));
    if text.ends_with('/') && !out.is_empty() {
        result.push('/');
    }
    if result.contains(['?', '#', '%']) {
        suspicious = true;
    }
    (escape_delimiters(result), suspicious)
}

/// A raw request target's path (query and fragment dropped) read under `strict`: refused, or decoded and normalised.
pub fn read_path(raw_target: &str, strict: bool) -> Result<(String, bool), Refusal> {
    // Absolute form where proxies send origin form: whose host would count? Refused in every mode.
    if !raw_target.starts_with('/') {
        return Err(Refusal::NotOriginForm);
    }
    if strict {
        let path = raw_target.split('?').next().unwrap_or("");
        firewall(path).map(|p| (p, false))
    } else {
        Ok(normalize_path(raw_target))
    }
}

/// Lower case, port and one trailing dot removed (`Admin.Example.com.:443` → `admin.example.com`); anything that
/// is not a plain DNS name or IP literal is refused rather than guessed at.
pub fn normalize_host(raw: &str) -> Result<String, Refusal> {
    let raw = raw.trim().to_ascii_lowercase();
    if let Some(rest) = raw.strip_prefix('[') {
        let (literal, port) = rest.split_once(']').ok_or(Refusal::BadHost)?;
        let port_ok = port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !port_ok || literal.is_empty() || !literal.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err(Refusal::BadHost);
        }
        return Ok(literal.to_string());
    }
    let host = match raw.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return Err(Refusal::BadHost),
        None => raw.as_str(),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(host.to_string())
    } else {
        Err(Refusal::BadHost)
    }
}

/// RFC 9110 `token`; the case is kept (rules decide how to compare).
pub fn check_method(raw: &str) -> Result<String, Refusal> {
    let ok = !raw.is_empty()
        && raw.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        });
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Refusal::BadMethod)
    }
}

/// Builds the original request from the three things every proxy tells, each read the one strict way.
pub fn original_request(
    method: &str,
    host: Option<&str>,
    raw_target: &str,
    strict: bool,
) -> Result<OriginalRequest, Refusal> {
    let (path, suspicious) = read_path(raw_target, strict)?;
    let nfkc_path = if path.is_ascii() {
        None
    } else {
        let n: String = path.nfkc().collect();
        (n != path).then_some(n)
    };
    Ok(OriginalRequest {
        method: check_method(method)?,
        host: host.map(normalize_host).transpose()?,
        path,
        nfkc_path,
        suspicious,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewall_table() {
        use Refusal::*;
        let cases: &[(&str, Result<&str, Refusal>)] = &[
            ("/", Ok("/")),
            ("/api/users", Ok("/api/users")),
            ("/api/users/", Ok("/api/users/")),
            ("/caf%C3%A9/men%C3%BC", Ok("/caf\u{e9}/men\u{fc}")),
            ("/caf\u{e9}", Ok("/caf\u{e9}")),
            ("/v1.2/x", Ok("/v1.2/x")),
            ("/%61dmin/x", Ok("/admin/x")),
            ("/a%3Fb", Ok("/a%3Fb")),
            ("api", Err(NotOriginForm)),
            ("http://h/admin/x", Err(NotOriginForm)),
            ("*", Err(NotOriginForm)),
            ("/public/..;/admin/x", Err(Semicolon)),
            ("/admin;x=1/y", Err(Semicolon)),
            ("/admin%3bx/y", Err(Semicolon)),
            ("/public%2F..%2Fadmin", Err(EncodedSeparator)),
            ("/public/%2e%2e/admin", Err(EncodedSeparator)),
            ("/a%5Cb", Err(EncodedSeparator)),
            ("/a\\..\\b", Err(Backslash)),
            ("/%2561dmin/x", Err(DoubleEncoding)),
            ("/100%25", Err(DoubleEncoding)),
            ("/admin%00/x", Err(Control)),
            ("/a%0d%0ab", Err(Control)),
            ("/a\tb", Err(Control)),
            ("/a%C2%85b", Err(Control)),
            ("/a%E2%80%A8b", Err(Control)),
            ("/a b", Err(BadCharacter)),
            ("/a#b", Err(BadCharacter)),
            ("/public/../admin", Err(DotSegment)),
            ("/public/./x", Err(DotSegment)),
            ("/admin./x", Err(DotSegment)),
            ("/x/..", Err(DotSegment)),
            ("/a//b", Err(EmptySegment)),
            ("//admin", Err(EmptySegment)),
            ("/public/%EF%BC%8E%EF%BC%8E/admin/x", Err(UnicodeLookalike)),
            ("/a\u{ff0f}b", Err(UnicodeLookalike)),
            ("/a%EF%BC%9Bb", Err(UnicodeLookalike)),
            ("/a\u{2024}b", Err(UnicodeLookalike)),
            ("/a%FF", Err(BadEncoding)),
            ("/a%4", Err(BadEncoding)),
            ("/a%zz", Err(BadEncoding)),
        ];
        for (raw, want) in cases {
            assert_eq!(
                firewall(raw).as_deref().map_err(|e| *e),
                want.as_deref().map_err(|e| *e),
                "{raw:?}"
            );
            if let Ok(p) = firewall(raw) {
                assert_eq!(firewall(&p), Ok(p.clone()), "idempotent: {raw:?}");
            }
        }
    }

    #[test]
    fn query_is_never_part_of_the_path() {
        assert_eq!(read_path("/a/b?x=/../;", true), Ok(("/a/b".to_string(), false)));
        assert_eq!(read_path("/a;b?x=1", true), Err(Refusal::Semicolon));
    }

    #[test]
    fn lenient_normalisation() {
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
            ("/admin;x=1/y", "/admin;x=1/y", true),
            ("/admin./x", "/admin./x", true),
            ("/public/%EF%BC%8E%EF%BC%8E/x", "/public/\u{ff0e}\u{ff0e}/x", true),
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
    fn hosts() {
        let cases: &[(&str, Result<&str, Refusal>)] = &[
            ("Admin.Example.com", Ok("admin.example.com")),
            ("admin.example.com.", Ok("admin.example.com")),
            ("admin.example.com.:8443", Ok("admin.example.com")),
            ("ADMIN.example.com:443", Ok("admin.example.com")),
            ("[::1]:8080", Ok("::1")),
            ("[::1]", Ok("::1")),
            ("10.0.0.1:80", Ok("10.0.0.1")),
            ("my_host.internal", Ok("my_host.internal")),
            ("admin.example.com..", Err(Refusal::BadHost)),
            ("", Err(Refusal::BadHost)),
            ("user@admin.example.com", Err(Refusal::BadHost)),
            ("admin.example.com:80:80", Err(Refusal::BadHost)),
            ("admin.example.com:", Err(Refusal::BadHost)),
            ("admin%2eexample.com", Err(Refusal::BadHost)),
            ("adm\u{ed}n.example.com", Err(Refusal::BadHost)),
            ("[::1", Err(Refusal::BadHost)),
            ("[::1]x", Err(Refusal::BadHost)),
        ];
        for (raw, want) in cases {
            assert_eq!(
                normalize_host(raw).as_deref().map_err(|e| *e),
                want.as_deref().map_err(|e| *e),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn readings_cover_trailing_slash_and_unicode() {
        let r = original_request("GET", Some("h"), "/admin/", true).unwrap();
        assert_eq!(r.path_readings().collect::<Vec<_>>(), vec!["/admin/", "/admin"]);
        let r = original_request("GET", None, "/%EF%BD%81dmin/x", true).unwrap();
        assert_eq!(
            r.path_readings().collect::<Vec<_>>(),
            vec!["/\u{ff41}dmin/x", "/admin/x"]
        );
        let r = original_request("GET", None, "/", true).unwrap();
        assert_eq!(r.path_readings().collect::<Vec<_>>(), vec!["/"]);
        assert_eq!(
            original_request("GE T", None, "/", true).unwrap_err(),
            Refusal::BadMethod
        );
        assert_eq!(original_request("get", None, "/", true).unwrap().method, "get");
    }
}
