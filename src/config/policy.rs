//! `[policy]` and `[[rules]]`: the global requirements, the per-route rules, the request firewall's strictness and
//! which role claims count.

use serde::Deserialize;

use super::Extra;
use super::collect::{Collector, clean_list, non_empty};
use crate::policy::{Policy, Requirements, Rule, RuleAction, is_scope_token};
use crate::token::RoleScope;

#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub global: Requirements,
    pub deny_unmatched: bool,
    pub rules: Vec<Rule>,
    /// `policy.strict_paths`: refuse paths servers could read differently instead of repairing them.
    pub strict_paths: bool,
    /// Which role claims count (`policy.project_id`, `policy.org_id`).
    pub roles: RoleScope,
}

impl PolicyConfig {
    pub fn policy(&self) -> Policy {
        Policy {
            global: self.global.clone(),
            rules: self.rules.clone(),
            deny_unmatched: self.deny_unmatched,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawPolicy {
    audience: Vec<String>,
    required_scopes: Vec<String>,
    required_roles: Vec<String>,
    deny_unmatched: Option<String>,
    strict_paths: Option<String>,
    case_sensitive_paths: Option<String>,
    project_id: Option<String>,
    org_id: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawRule {
    name: Option<String>,
    hosts: Vec<String>,
    methods: Vec<String>,
    paths: Vec<String>,
    anonymous: Option<String>,
    required_scopes: Vec<String>,
    required_roles: Vec<String>,
    audience: Vec<String>,
    #[serde(flatten)]
    extra: Extra,
}

/// Missing scopes are echoed in `WWW-Authenticate`: only RFC 6749 scope tokens can be required.
fn check_scopes(c: &mut Collector, key: &str, scopes: &[String]) {
    for bad in scopes.iter().filter(|s| !is_scope_token(s)) {
        c.err(
            key,
            format!("{bad:?} is not a scope (RFC 6749: printable ASCII without space, '\"' or '\\')"),
        );
    }
}

/// A ZITADEL id: decimal. Anything else would never match a claim and silently drop every role.
fn zitadel_id(c: &mut Collector, key: &str, raw: Option<String>) -> Option<String> {
    let v = non_empty(raw)?;
    if v.bytes().all(|b| b.is_ascii_digit()) {
        Some(v)
    } else {
        c.err(key, format!("{v:?} is not a ZITADEL id (digits only)"));
        None
    }
}

pub(super) fn validate(c: &mut Collector, raw: RawPolicy, raw_rules: Vec<RawRule>) -> PolicyConfig {
    check_scopes(c, "policy.required_scopes", &raw.required_scopes);
    let global = Requirements::new(
        clean_list(raw.audience),
        clean_list(raw.required_scopes),
        clean_list(raw.required_roles),
    );
    let deny_unmatched = c.boolean("policy.deny_unmatched", raw.deny_unmatched.as_deref());
    let strict_paths = c.boolean_or("policy.strict_paths", raw.strict_paths.as_deref(), true);
    let case_sensitive_paths = c.boolean("policy.case_sensitive_paths", raw.case_sensitive_paths.as_deref());
    let roles = RoleScope {
        project_id: zitadel_id(c, "policy.project_id", raw.project_id),
        org_id: zitadel_id(c, "policy.org_id", raw.org_id),
    };
    let rules = raw_rules
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| validate_rule(c, i, r, case_sensitive_paths))
        .collect();
    PolicyConfig {
        global,
        deny_unmatched,
        rules,
        strict_paths,
        roles,
    }
}

fn validate_rule(c: &mut Collector, index: usize, r: RawRule, case_sensitive_paths: bool) -> Option<Rule> {
    let name = non_empty(r.name).unwrap_or_else(|| format!("#{}", index + 1));
    let key = format!("rules[{index}] ({name})");
    check_scopes(c, &format!("{key}.required_scopes"), &r.required_scopes);
    let mut names: Vec<&String> = r.extra.keys().collect();
    names.sort();
    for extra in names {
        c.err(&format!("{key}.{extra}"), "unknown key");
    }
    let anonymous = c.boolean(&format!("{key}.anonymous"), r.anonymous.as_deref());
    let requirements = Requirements::new(
        clean_list(r.audience),
        clean_list(r.required_scopes),
        clean_list(r.required_roles),
    );
    if anonymous && !requirements.is_empty() {
        c.err(&key, "an anonymous rule cannot also have requirements");
    }
    let action = if anonymous {
        RuleAction::Anonymous
    } else {
        RuleAction::Require(requirements)
    };
    match Rule::new(
        name,
        &clean_list(r.hosts),
        &clean_list(r.methods),
        &clean_list(r.paths),
        action,
        case_sensitive_paths,
    ) {
        Ok(rule) => Some(rule),
        Err(e) => {
            c.err(&key, e.to_string());
            None
        }
    }
}
