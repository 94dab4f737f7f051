//! Per-route rules: globs over hosts, methods and paths with the strictest-reading semantics, first match wins,
//! and what one check requires (`Policy::requirements_for`).

use std::borrow::Cow;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::Requirements;
use crate::original::OriginalRequest;

#[derive(Debug, Clone)]
pub enum RuleAction {
    Anonymous,
    Require(Requirements),
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("bad glob {glob:?} in {field}: {reason}")]
    Glob {
        field: &'static str,
        glob: String,
        reason: String,
    },
    #[error("{0:?} is not an HTTP method")]
    Method(String),
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    hosts: Option<GlobSet>,
    methods: Vec<String>,
    paths: Option<GlobSet>,
    pub action: RuleAction,
}

/// How a glob compares text.
#[derive(Clone, Copy)]
enum GlobKind {
    /// Hosts: case-insensitive, no separators.
    Host,
    /// Paths: `*` stays within one segment, `**` crosses them, `/area/**` also covers `/area` itself.
    Path { case_insensitive: bool },
}

fn glob_set(field: &'static str, globs: &[String], kind: GlobKind) -> Result<Option<GlobSet>, RuleError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for g in globs {
        let mut texts = vec![g.as_str()];
        if let GlobKind::Path { .. } = kind
            && let Some(root) = g.strip_suffix("/**").filter(|r| !r.is_empty())
        {
            texts.push(root);
        }
        for text in texts {
            let built = match kind {
                GlobKind::Path { case_insensitive } => GlobBuilder::new(text)
                    .literal_separator(true)
                    .case_insensitive(case_insensitive)
                    .build(),
                GlobKind::Host => GlobBuilder::new(&text.to_ascii_lowercase())
                    .case_insensitive(true)
                    .build(),
            };
            let glob: Glob = built.map_err(|e| RuleError::Glob {
                field,
                glob: g.clone(),
                reason: e.kind().to_string(),
            })?;
            set.add(glob);
        }
    }
    set.build().map(Some).map_err(|e| RuleError::Glob {
        field,
        glob: globs.join(","),
        reason: e.to_string(),
    })
}

impl Rule {
    pub fn new(
        name: String,
        hosts: &[String],
        methods: &[String],
        paths: &[String],
        action: RuleAction,
        case_sensitive_paths: bool,
    ) -> Result<Rule, RuleError> {
        let methods = methods
            .iter()
            .map(|m| {
                let upper = m.to_ascii_uppercase();
                if !upper.is_empty() && upper.bytes().all(|b| b.is_ascii_uppercase()) {
                    Ok(upper)
                } else {
                    Err(RuleError::Method(m.clone()))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A grant without a token must match exactly; a rule that requires something matches every reading the
        // application might use, so that no reading escapes it.
        let anonymous = matches!(action, RuleAction::Anonymous);
        Ok(Rule {
            name,
            hosts: glob_set("hosts", hosts, GlobKind::Host)?,
            methods,
            paths: glob_set(
                "paths",
                paths,
                GlobKind::Path {
                    case_insensitive: !anonymous && !case_sensitive_paths,
                },
            )?,
            action,
        })
    }

    pub fn matches(&self, req: &OriginalRequest) -> bool {
        let anonymous = matches!(self.action, RuleAction::Anonymous);
        if anonymous && req.suspicious {
            return false;
        }
        if !self.methods.is_empty() {
            let method_ok = if anonymous {
                self.methods.contains(&req.method)
            } else {
                self.methods.iter().any(|m| m.eq_ignore_ascii_case(&req.method))
            };
            if !method_ok {
                return false;
            }
        }
        if let Some(hosts) = &self.hosts {
            match &req.host {
                Some(h) if hosts.is_match(h) => {}
                // An unknown host could be any host: only rules that require something assume it is theirs.
                None if !anonymous => {}
                _ => return false,
            }
        }
        if let Some(paths) = &self.paths {
            let matched = if anonymous {
                paths.is_match(&req.path)
            } else {
                req.path_readings().any(|p| paths.is_match(p))
            };
            if !matched {
                return false;
            }
        }
        true
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub global: Requirements,
    pub rules: Vec<Rule>,
    pub deny_unmatched: bool,
}

/// What one check requires: the rule's (or global) requirements combined with the door's extra ones.
#[derive(Debug, PartialEq, Eq)]
pub enum Required<'a> {
    Anonymous {
        rule: &'a str,
    },
    Require {
        rule: Option<&'a str>,
        requirements: Cow<'a, Requirements>,
    },
    DenyUnmatched,
}

/// What applies to one original request.
#[derive(Debug, PartialEq, Eq)]
pub enum Selection<'a> {
    Anonymous {
        rule: &'a str,
    },
    Require {
        rule: Option<&'a str>,
        requirements: &'a Requirements,
    },
    DenyUnmatched,
}

impl Policy {
    /// Rules need the original request; without rules it plays no part.
    pub fn needs_original(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The one answer to "what does this check require": the first matching rule (or the global policy, or
    /// `deny_unmatched`) with `extra` (the check URL's query, gRPC context extensions) added. `original` is `None`
    /// only when `needs_original` is false.
    pub fn requirements_for<'a>(&'a self, original: Option<&OriginalRequest>, extra: &Requirements) -> Required<'a> {
        let selection = match original {
            Some(o) => self.select(o),
            None if self.deny_unmatched => Selection::DenyUnmatched,
            None => Selection::Require {
                rule: None,
                requirements: &self.global,
            },
        };
        match selection {
            Selection::Anonymous { rule } if extra.is_empty() => Required::Anonymous { rule },
            // The operator's per-location demands apply on top of whatever else does, anonymous rules included.
            Selection::Anonymous { rule } => Required::Require {
                rule: Some(rule),
                requirements: Cow::Owned(extra.clone()),
            },
            Selection::DenyUnmatched => Required::DenyUnmatched,
            Selection::Require { rule, requirements } => Required::Require {
                rule,
                requirements: if extra.is_empty() {
                    Cow::Borrowed(requirements)
                } else {
                    Cow::Owned(requirements.and(extra))
                },
            },
        }
    }

    /// First matching rule wins; otherwise the global policy, unless `deny_unmatched`.
    pub fn select(&self, req: &OriginalRequest) -> Selection<'_> {
        for rule in &self.rules {
            if rule.matches(req) {
                return match &rule.action {
                    RuleAction::Anonymous => Selection::Anonymous { rule: &rule.name },
                    RuleAction::Require(r) => Selection::Require {
                        rule: Some(&rule.name),
                        requirements: r,
                    },
                };
            }
        }
        if self.deny_unmatched {
            Selection::DenyUnmatched
        } else {
            Selection::Require {
                rule: None,
                requirements: &self.global,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(aud: &[&str], scopes: &[&str], roles: &[&str]) -> Requirements {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Requirements::new(v(aud), v(scopes), v(roles))
    }

    fn orig(method: &str, host: Option<&str>, path: &str, suspicious: bool) -> OriginalRequest {
        OriginalRequest {
            method: method.into(),
            host: host.map(Into::into),
            path: path.into(),
            nfkc_path: None,
            suspicious,
        }
    }

    fn policy() -> Policy {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Policy {
            global: req(&[], &["openid"], &[]),
            rules: vec![
                Rule::new(
                    "health".into(),
                    &[],
                    &s(&["GET"]),
                    &s(&["/public/**"]),
                    RuleAction::Anonymous,
                    false,
                )
                .unwrap(),
                Rule::new(
                    "admin".into(),
                    &s(&["*.example.com"]),
                    &[],
                    &s(&["/api/admin/**"]),
                    RuleAction::Require(req(&[], &[], &["admin"])),
                    false,
                )
                .unwrap(),
                Rule::new(
                    "one-level".into(),
                    &[],
                    &[],
                    &s(&["/files/*"]),
                    RuleAction::Require(req(&[], &["files"], &[])),
                    false,
                )
                .unwrap(),
            ],
            deny_unmatched: false,
        }
    }

    #[test]
    fn rule_selection() {
        let p = policy();
        assert_eq!(
            p.select(&orig("GET", None, "/public/a/b.css", false)),
            Selection::Anonymous { rule: "health" }
        );
        assert!(
            matches!(
                p.select(&orig("POST", None, "/public/a", false)),
                Selection::Require { rule: None, .. }
            ),
            "method limits the rule"
        );
        assert!(
            matches!(
                p.select(&orig("GET", None, "/public/x", true)),
                Selection::Require { rule: None, .. }
            ),
            "suspicious paths are never anonymous"
        );
        assert!(matches!(
            p.select(&orig("GET", Some("app.example.com"), "/api/admin/users", false)),
            Selection::Require {
                rule: Some("admin"),
                ..
            }
        ));
        assert!(
            matches!(
                p.select(&orig("GET", Some("example.org"), "/api/admin/users", false)),
                Selection::Require { rule: None, .. }
            ),
            "host limits the rule"
        );
        assert!(
            matches!(
                p.select(&orig("GET", None, "/api/admin/users", false)),
                Selection::Require {
                    rule: Some("admin"),
                    ..
                }
            ),
            "an unknown host could be any host: a rule that requires something applies"
        );
        assert!(matches!(
            p.select(&orig("GET", None, "/files/a", false)),
            Selection::Require {
                rule: Some("one-level"),
                ..
            }
        ));
        assert!(
            matches!(
                p.select(&orig("GET", None, "/files/a/b", false)),
                Selection::Require { rule: None, .. }
            ),
            "* stays in one segment"
        );
        let mut strict = p.clone();
        strict.deny_unmatched = true;
        assert_eq!(
            strict.select(&orig("GET", None, "/other", false)),
            Selection::DenyUnmatched
        );
    }

    #[test]
    fn requirements_for_combines_the_rule_with_the_checks_extras() {
        let p = policy();
        let extra = req(&[], &[], &["ops"]);
        match p.requirements_for(Some(&orig("GET", Some("a.example.com"), "/api/admin/x", false)), &extra) {
            Required::Require {
                rule: Some("admin"),
                requirements,
            } => assert_eq!(
                requirements.roles,
                vec![vec!["admin".to_string()], vec!["ops".to_string()]]
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p.requirements_for(Some(&orig("GET", None, "/public/x", false)), &Requirements::default()),
            Required::Anonymous { rule: "health" }
        );
        assert_eq!(
            p.requirements_for(Some(&orig("GET", None, "/public/x", false)), &extra),
            Required::Require {
                rule: Some("health"),
                requirements: Cow::Owned(extra.clone())
            },
            "the check's own demands are never dropped, not even by an anonymous rule"
        );
        let no_rules = Policy {
            rules: vec![],
            ..p.clone()
        };
        assert!(matches!(
            no_rules.requirements_for(None, &Requirements::default()),
            Required::Require {
                rule: None,
                requirements: Cow::Borrowed(_)
            }
        ));
        let strict = Policy {
            rules: vec![],
            deny_unmatched: true,
            ..p
        };
        assert_eq!(strict.requirements_for(None, &extra), Required::DenyUnmatched);
    }

    #[test]
    fn bad_globs_and_methods_are_refused() {
        assert!(Rule::new("x".into(), &[], &[], &["/a/[b".into()], RuleAction::Anonymous, false).is_err());
        assert!(Rule::new("x".into(), &[], &["G E T".into()], &[], RuleAction::Anonymous, false).is_err());
    }

    /// The glob semantics the README documents: `*` within a segment, `**` across, `/area/**` covers `/area`,
    /// rules that require something ignore case and trailing slashes and see NFKC, anonymous rules match exactly.
    #[test]
    fn glob_semantics_table() {
        let require = |glob: &str, ci_off: bool| {
            Rule::new(
                "r".into(),
                &[],
                &[],
                &[glob.to_string()],
                RuleAction::Require(Requirements::default()),
                ci_off,
            )
            .unwrap()
        };
        let anonymous =
            |glob: &str| Rule::new("a".into(), &[], &[], &[glob.to_string()], RuleAction::Anonymous, false).unwrap();
        let at = |path: &str| crate::original::original_request("GET", None, path, true).unwrap();
        let cases: &[(&str, &str, bool, bool)] = &[
            // (glob, path, a rule that requires something matches, an anonymous rule matches)
            ("/admin/**", "/admin/x", true, true),
            ("/admin/**", "/admin/x/y", true, true),
            ("/admin/**", "/admin/", true, true),
            ("/admin/**", "/admin", true, true),
            ("/admin/**", "/administrator", false, false),
            ("/admin/**", "/ADMIN/x", true, false),
            ("/admin/**", "/Admin", true, false),
            ("/admin/**", "/%EF%BD%81dmin/x", true, false),
            ("/admin/*", "/admin/x", true, true),
            ("/admin/*", "/admin/x/y", false, false),
            ("/admin", "/admin/", true, false),
            ("/admin", "/ADMIN/", true, false),
            ("/api/*/users", "/api/v1/users", true, true),
            ("/api/**/users", "/api/v1/v2/users", true, true),
            ("/api/**/users", "/api/users", true, true),
            ("/public/**", "/PUBLIC/x", true, false),
            ("*.css", "/x.css", false, false),
            ("/**/*.css", "/a/b/x.css", true, true),
        ];
        for (glob, path, req_match, anon_match) in cases {
            let r = at(path);
            assert_eq!(require(glob, false).matches(&r), *req_match, "require {glob} on {path}");
            assert_eq!(anonymous(glob).matches(&r), *anon_match, "anonymous {glob} on {path}");
        }
        assert!(
            !require("/admin/**", true).matches(&at("/ADMIN/x")),
            "policy.case_sensitive_paths turns case-insensitivity off"
        );
        let methods = |action| Rule::new("m".into(), &[], &["GET".into()], &[], action, false).unwrap();
        let lower = OriginalRequest {
            method: "get".into(),
            ..at("/")
        };
        assert!(methods(RuleAction::Require(Requirements::default())).matches(&lower));
        assert!(!methods(RuleAction::Anonymous).matches(&lower));
    }
}
