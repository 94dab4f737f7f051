//! `parse_check_query` (the check URL's `?scope=…&role=…`) and `normalize_path` (the original request's path).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::original::normalize_path;
use tokengate::policy::parse_check_query;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(r) = parse_check_query(&text) {
        assert!(r.audiences.is_empty(), "a check URL set an audience");
        assert!(r.roles.len() <= 1, "a check URL made more than one role group");
        for s in &r.scopes {
            assert!(!s.is_empty() && !s.contains(' '), "bad scope {s:?}");
        }
        for role in r.roles.iter().flatten() {
            assert!(!role.is_empty() && role.trim() == role, "bad role {role:?}");
        }
    }

    let (path, _suspicious) = normalize_path(&text);
    assert!(path.starts_with('/'), "{text:?} -> {path:?}: does not start with /");
    assert!(!path.contains("//"), "{text:?} -> {path:?}: contains //");
    assert!(
        !path.split('/').any(|seg| seg == "." || seg == ".."),
        "{text:?} -> {path:?}: has a . or .. segment"
    );
    let (again, _) = normalize_path(&path);
    assert_eq!(again, path, "not idempotent: {text:?} -> {path:?} -> {again:?}");
});
