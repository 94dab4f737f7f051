//! Which of ZITADEL's roles claims count: pinned to a project (and optionally an organisation), so that a role in
//! another project of the same instance never passes a rule here.

use serde_json::Value;

/// ZITADEL's generic roles claim.
pub const GENERIC_ROLES_CLAIM: &str = "urn:zitadel:iam:org:project:roles";

/// The project id of a per-project roles claim `urn:zitadel:iam:org:project:{id}:roles`.
fn project_of_roles_claim(name: &str) -> Option<&str> {
    name.strip_prefix("urn:zitadel:iam:org:project:")
        .and_then(|rest| rest.strip_suffix(":roles"))
        .filter(|id| !id.is_empty() && !id.contains(':'))
}

/// Which roles claims count (`policy.project_id`, `policy.org_id`). A user who is admin in another project of
/// the same instance must not pass a rule that requires `admin` here.
///
/// What ZITADEL sends (read from its source, `internal/api/oidc/introspect.go` and the token claims code):
/// - introspection: the generic `urn:zitadel:iam:org:project:roles` holds the roles of the introspecting API
///   application's own project, and exactly one per-project claim, for that same project, repeats them;
/// - a JWT access token: the generic claim describes the project of the client the token was issued to; per-project
///   claims are added for other projects the client asked for (`…:project:id:{id}:aud` with a roles scope).
///
/// So with `project_id` set only `urn:zitadel:iam:org:project:{project_id}:roles` counts (the generic claim does
/// not name its project, and ZITADEL always sends the per-project claim beside it); without it only the generic
/// claim counts, i.e. the project the token was issued for (JWT) or tokengate's own (introspection). Another
/// project's claim never counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleScope {
    pub project_id: Option<String>,
    /// Only roles granted in this organisation (a key of the role's value) count.
    pub org_id: Option<String>,
}

impl RoleScope {
    /// Whether roles under this claim name count.
    pub fn counts(&self, claim: &str) -> bool {
        match &self.project_id {
            Some(pinned) => project_of_roles_claim(claim) == Some(pinned.as_str()),
            None => claim == GENERIC_ROLES_CLAIM,
        }
    }

    /// Whether a role's grant (`{"<orgId>": "<org domain>"}`) is in the pinned organisation, if any.
    pub(super) fn org_matches(&self, grant: &Value) -> bool {
        match &self.org_id {
            None => true,
            Some(org) => grant.as_object().is_some_and(|o| o.contains_key(org)),
        }
    }

    /// The claims that count, as `tokengate check` prints them.
    pub fn describe(&self) -> String {
        let claim = match &self.project_id {
            Some(p) => format!("urn:zitadel:iam:org:project:{p}:roles"),
            None => format!("{GENERIC_ROLES_CLAIM} (set policy.project_id to pin the project)"),
        };
        match &self.org_id {
            Some(o) => format!("{claim}, granted in organisation {o}"),
            None => claim,
        }
    }
}
