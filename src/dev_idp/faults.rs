//! Injected misbehaviour for tests, benchmarks and soak runs: on introspection (latency, a status and body,
//! hanging, dripping) and on the key set (latency, a status, hanging, an empty set as zitadel#7714 served).

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Deserialize;

/// Injected misbehaviour, applied to introspection requests.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Milliseconds to wait before answering.
    pub latency_ms: u64,
    /// Answer with this status and `body` instead of introspecting.
    pub status: Option<u16>,
    pub body: Option<String>,
    /// Never answer.
    pub hang: bool,
    /// Send the (real) answer one byte per second.
    pub drip: bool,
}

/// Injected misbehaviour, applied to `GET /oauth/v2/keys`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JwksFaults {
    /// Milliseconds to wait before answering.
    pub latency_ms: u64,
    /// Answer with this status (and an error body) instead of the key set.
    pub status: Option<u16>,
    /// Never answer.
    pub hang: bool,
    /// Answer 200 with `{"keys":[]}`.
    pub empty: bool,
}

/// Long enough that any client gives up first; short enough not to outlive a test run by much.
const HANG: Duration = Duration::from_secs(3600);

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl Faults {
    /// Waits as told, then the answer that replaces the real one, if any.
    pub(super) async fn before(&self) -> Option<HttpResponse> {
        if self.hang {
            tokio::time::sleep(HANG).await;
        }
        if self.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.latency_ms)).await;
        }
        if let Some(code) = self.status {
            return Some(
                HttpResponse::build(status(code))
                    .content_type("application/json")
                    .body(self.body.clone().unwrap_or_default()),
            );
        }
        self.body
            .clone()
            .map(|body| HttpResponse::Ok().content_type("application/json").body(body))
    }
}

impl JwksFaults {
    /// Waits as told, then the answer that replaces the real key set, if any.
    pub(super) async fn before(&self) -> Option<HttpResponse> {
        if self.hang {
            tokio::time::sleep(HANG).await;
        }
        if self.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.latency_ms)).await;
        }
        if let Some(code) = self.status {
            return Some(
                HttpResponse::build(status(code))
                    .content_type("application/json")
                    .body(r#"{"error":"server_error"}"#),
            );
        }
        None
    }
}

/// `answer` sent one byte per second.
pub(super) async fn drip(answer: HttpResponse) -> HttpResponse {
    let status = answer.status();
    let bytes = actix_web::body::to_bytes(answer.into_body()).await.unwrap_or_default();
    let stream = futures_util::stream::unfold(0usize, move |i| {
        let bytes = bytes.clone();
        async move {
            if i >= bytes.len() {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok::<_, actix_web::Error>(bytes.slice(i..i + 1)), i + 1))
        }
    });
    HttpResponse::build(status)
        .content_type("application/json")
        .streaming(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: HttpResponse) -> String {
        String::from_utf8(actix_web::body::to_bytes(r.into_body()).await.unwrap().to_vec()).unwrap()
    }

    #[actix_web::test]
    async fn no_faults_leave_the_answer_alone() {
        let f: Faults = serde_json::from_str("{}").unwrap();
        assert!(f.before().await.is_none());
        let j: JwksFaults = serde_json::from_str("{}").unwrap();
        assert!(j.before().await.is_none());
    }

    #[actix_web::test]
    async fn a_status_replaces_the_answer() {
        let f: Faults = serde_json::from_str(r#"{"status": 503, "body": "{\"error\":\"x\"}"}"#).unwrap();
        let r = f.before().await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(r).await, r#"{"error":"x"}"#);
        let r = Faults {
            status: Some(1),
            ..Faults::default()
        }
        .before()
        .await
        .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "an impossible status becomes 500"
        );
    }

    #[actix_web::test]
    async fn a_body_alone_is_sent_with_200() {
        let r = Faults {
            body: Some("not json".into()),
            ..Faults::default()
        }
        .before()
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, "not json");
    }

    #[actix_web::test]
    async fn the_key_set_can_fail() {
        let j: JwksFaults = serde_json::from_str(r#"{"status": 500}"#).unwrap();
        assert_eq!(j.before().await.unwrap().status(), StatusCode::INTERNAL_SERVER_ERROR);
        let empty: JwksFaults = serde_json::from_str(r#"{"empty": true}"#).unwrap();
        assert!(
            empty.empty && empty.before().await.is_none(),
            "an empty set is served by the handler"
        );
    }

    #[actix_web::test]
    async fn drip_sends_the_same_bytes() {
        let r = drip(HttpResponse::Ok().body("7")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, "7");
    }
}
