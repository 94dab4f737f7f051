//! The introspection cache: fewer IdP calls, never a looser decision.

use std::time::Duration;

use std::sync::Arc;

use futures_util::future::join_all;
use tokengate::clock::ManualClock;
use tokengate::dev_idp::{Faults, TokenSpec};

use crate::helpers::*;

#[actix_web::test]
async fn repeated_checks_make_one_idp_call() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    let token = idp.mint(admin());
    assert_eq!(app.verify(&token).await.status, 200);
    let second = app.verify(&token).await;
    assert_eq!(second.status, 200);
    assert_eq!(
        second.header("x-auth-request-user").as_deref(),
        Some("user-1"),
        "hits carry the identity headers"
    );
    assert_eq!(idp.idp.introspections(), 1);
    assert_eq!(app.metric("tokengate_cache_lookups_total", &[("result", "hit")]), 1.0);
    assert_eq!(app.metric("tokengate_cache_lookups_total", &[("result", "miss")]), 1.0);
}

#[actix_web::test]
async fn concurrent_misses_for_one_token_share_one_call() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    assert!(app.wait_ready().await);
    // Slow enough that all 200 checks arrive while the first call is in flight.
    idp.idp.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let good = idp.mint(admin());
    let answers = join_all((0..200).map(|_| app.verify(&good))).await;
    assert!(
        answers
            .iter()
            .all(|a| a.status == 200 && a.header("x-auth-request-user").as_deref() == Some("user-1"))
    );
    assert_eq!(idp.idp.introspections(), 1);
    assert!(app.metric("tokengate_introspection_coalesced_total", &[]) >= 1.0);

    let before = idp.idp.introspections();
    let answers = join_all((0..200).map(|_| app.verify("not-a-real-token"))).await;
    assert!(
        answers.iter().all(|a| a.status == 401),
        "every waiter gets the (negative) answer"
    );
    assert_eq!(idp.idp.introspections() - before, 1);
}

#[actix_web::test]
async fn shared_errors_reach_every_waiter_and_are_not_cached() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    assert!(app.wait_ready().await);
    idp.idp.set_faults(Faults {
        latency_ms: 300,
        status: Some(502),
        ..Faults::default()
    });
    let token = idp.mint(admin());
    let answers = join_all((0..50).map(|_| app.verify(&token))).await;
    assert!(answers.iter().all(|a| a.status == 503));
    assert_eq!(idp.idp.introspections(), 1);
    idp.idp.set_faults(Faults::default());
    assert_eq!(app.verify(&token).await.status, 200);
    assert_eq!(idp.idp.introspections(), 2);
}

#[actix_web::test]
async fn ttl_is_capped_by_the_token_exp() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().set("cache.ttl", "60s")).await;
    let token = idp.mint(TokenSpec::default().expires_in(2));
    assert_eq!(app.verify(&token).await.status, 200);
    assert_eq!(app.verify(&token).await.status, 200);
    assert_eq!(idp.idp.introspections(), 1);
    actix_web::rt::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(app.verify(&token).await.status, 401);
}

/// The entry's lifetime is capped by exp, so a hit can never be past exp; what remains to prove is that every
/// answer, fresh from the IdP or not, is judged against exp on the (cache) clock.
#[actix_web::test]
async fn exp_is_checked_on_every_answer_against_the_clock() {
    let idp = TestIdp::start().await;
    let clock = manual_clock();
    let setup = Setup::new()
        .clock(clock.clone())
        .set("cache.ttl", "60s")
        .set("cache.refresh_ahead", "0");
    let app = spawn_app(&idp, setup).await;
    let token = idp.mint(TokenSpec::default().expires_in(30));
    assert_eq!(app.verify(&token).await.status, 200);
    // exp is whole seconds and the entry is capped by it: 28 s later the entry is still fresh, 31 s later it is not,
    // and either way the decision checks exp against the (cache) clock.
    clock.advance(Duration::from_secs(28));
    assert_eq!(app.verify(&token).await.status, 200);
    assert_eq!(idp.idp.introspections(), 1, "a hit");
    clock.advance(Duration::from_secs(3));
    assert_eq!(
        app.verify(&token).await.status,
        401,
        "the IdP (on real time) still says active; exp decides"
    );
    assert_eq!(
        idp.idp.introspections(),
        2,
        "the capped entry had expired: this answer came from the IdP"
    );
}

#[actix_web::test]
async fn negative_entries_expire_after_negative_ttl() {
    let idp = TestIdp::start().await;
    let clock = manual_clock();
    let app = spawn_app(&idp, Setup::new().clock(clock.clone()).set("cache.negative_ttl", "5s")).await;
    assert_eq!(app.verify("unknown").await.status, 401);
    assert_eq!(app.verify("unknown").await.status, 401);
    assert_eq!(idp.idp.introspections(), 1);
    clock.advance(Duration::from_secs(6));
    assert_eq!(app.verify("unknown").await.status, 401);
    assert_eq!(idp.idp.introspections(), 2);

    let app = spawn_app(&idp, Setup::new().set("cache.negative_ttl", "0s")).await;
    app.verify("unknown").await;
    app.verify("unknown").await;
    assert_eq!(idp.idp.introspections(), 4, "0 disables negative caching");
}

#[actix_web::test]
async fn a_revoked_token_is_refused_once_its_entry_expires() {
    let idp = TestIdp::start().await;
    let (app, clock) = clocked_app(&idp, "0", "0s").await;
    let token = idp.mint(admin());
    assert_eq!(app.verify(&token).await.status, 200);
    idp.idp.revoke(&token);
    assert_eq!(
        app.verify(&token).await.status,
        200,
        "still cached: the documented window"
    );
    clock.advance(Duration::from_secs(11));
    assert_eq!(app.verify(&token).await.status, 401);
}

#[actix_web::test]
async fn refresh_ahead_refreshes_in_the_background() {
    let idp = TestIdp::start().await;
    let (app, clock) = clocked_app(&idp, "0.5", "0s").await;
    let token = idp.mint(admin());
    assert_eq!(app.verify(&token).await.status, 200);
    clock.advance(Duration::from_secs(6));
    // The IdP now never answers: a caller that waited for the refresh would get a 503 after idp.timeout.
    idp.idp.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let answers = join_all((0..5).map(|_| app.verify(&token))).await;
    assert!(answers.iter().all(|a| a.status == 200));
    assert!(
        eventually(5, || idp.idp.introspections() == 2).await,
        "one background refresh"
    );
    assert_eq!(app.metric("tokengate_cache_refreshes_total", &[]), 1.0, "once per key");
    // A refresh that succeeds renews the entry: the token stays cached past its first TTL.
    idp.idp.set_faults(Faults::default());
    assert!(
        eventually(5, || app
            .metric("tokengate_introspection_requests_total", &[("outcome", "error")])
            == 1.0)
        .await
    );
    assert_eq!(app.verify(&token).await.status, 200);
    assert!(
        eventually(5, || idp.idp.introspections() == 3).await,
        "a failed refresh is retried on a later hit"
    );
    clock.advance(Duration::from_secs(6));
    assert_eq!(app.verify(&token).await.status, 200);
}

/// TTL 10 s, the given refresh-ahead share and stale-if-error window, a hand-driven clock.
async fn clocked_app(idp: &TestIdp, refresh_ahead: &str, stale_if_error: &str) -> (TestApp, Arc<ManualClock>) {
    let clock = manual_clock();
    let setup = Setup::new()
        .clock(clock.clone())
        .set("cache.ttl", "10s")
        .set("cache.refresh_ahead", refresh_ahead)
        .set("cache.stale_if_error", stale_if_error);
    (spawn_app(idp, setup).await, clock)
}

#[actix_web::test]
async fn stale_if_error_serves_within_the_window_only() {
    let idp = TestIdp::start().await;
    let (app, clock) = clocked_app(&idp, "0", "30s").await;
    let token = idp.mint(admin());
    assert_eq!(app.verify(&token).await.status, 200);
    idp.idp.set_faults(Faults {
        status: Some(500),
        ..Faults::default()
    });
    clock.advance(Duration::from_secs(15));
    assert_eq!(
        app.verify(&token).await.status,
        200,
        "IdP failing, inside the stale window"
    );
    assert_eq!(app.metric("tokengate_cache_lookups_total", &[("result", "stale")]), 1.0);
    clock.advance(Duration::from_secs(30));
    assert_eq!(app.verify(&token).await.status, 503, "past the window");

    // A 4xx (our credentials) is not papered over.
    let fresh = idp.mint(admin());
    assert_eq!(idp.idp.introspections(), 3);
    idp.idp.set_faults(Faults::default());
    assert_eq!(app.verify(&fresh).await.status, 200);
    idp.idp.remove_keys();
    clock.advance(Duration::from_secs(15));
    assert_eq!(app.verify(&fresh).await.status, 503);
}

#[actix_web::test]
async fn stale_if_error_never_serves_past_the_token_exp() {
    let idp = TestIdp::start().await;
    let (app, clock) = clocked_app(&idp, "0", "60s").await;
    let token = idp.mint(TokenSpec::default().expires_in(20));
    assert_eq!(app.verify(&token).await.status, 200);
    idp.idp.set_faults(Faults {
        status: Some(503),
        ..Faults::default()
    });
    clock.advance(Duration::from_secs(15));
    assert_eq!(app.verify(&token).await.status, 200);
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        app.verify(&token).await.status,
        503,
        "exp passed: unavailable, never allowed"
    );
}

#[actix_web::test]
async fn a_cached_token_still_meets_each_requests_requirements() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    let viewer = idp.mint(TokenSpec::default().roles(&["viewer"]));
    let auth = format!("Bearer {viewer}");
    assert_eq!(app.get("/verify", &[("Authorization", &auth)]).await.status, 200);
    assert_eq!(
        app.get("/verify?role=admin", &[("Authorization", &auth)]).await.status,
        403
    );
    assert_eq!(
        app.get("/verify?scope=write", &[("Authorization", &auth)]).await.status,
        403
    );
    assert_eq!(
        app.get("/verify?role=viewer&scope=openid", &[("Authorization", &auth)])
            .await
            .status,
        200
    );
    assert_eq!(idp.idp.introspections(), 1);
}

#[actix_web::test]
async fn the_cache_never_holds_more_than_max_entries() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().set("cache.max_entries", "10")).await;
    for _ in 0..60 {
        assert_eq!(app.verify(&idp.mint(admin())).await.status, 200);
    }
    assert!(app.cache.entry_count() <= 10, "{}", app.cache.entry_count());
    let metrics = app.get("/metrics", &[]).await;
    assert!(metric_value(&metrics.body, "tokengate_cache_entries", &[]) <= 10.0);
}

#[actix_web::test]
async fn idp_calls_in_flight_are_bounded_and_waiters_give_up_at_the_deadline() {
    let idp = TestIdp::start().await;
    let app = spawn_app(
        &idp,
        Setup::new().set("idp.max_concurrent", "1").set("idp.timeout", "1s"),
    )
    .await;
    assert!(app.wait_ready().await);
    // One slot, 600 ms per call, one 1 s budget per check for the slot and the call together: the 1st check gets
    // its answer at 0.6 s; the 2nd gets the slot at 0.6 s and its budget runs out during the call; the 3rd waits
    // for the slot and gives up when its own budget runs out (overloaded), or gets it with an instant left and
    // times out in the call: either way a 503 within its budget.
    idp.idp.set_faults(Faults {
        latency_ms: 600,
        ..Faults::default()
    });
    let tokens: Vec<String> = (0..3).map(|_| idp.mint(admin())).collect();
    let answers = join_all(tokens.iter().map(|t| app.verify(t))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort();
    assert_eq!(statuses, vec![200, 503, 503]);
    let overloaded = app.metric("tokengate_idp_errors_total", &[("kind", "overloaded")]);
    let timeouts = app.metric("tokengate_idp_errors_total", &[("kind", "timeout")]);
    assert!(timeouts >= 1.0, "the 2nd ran out of budget in the call");
    assert_eq!(overloaded + timeouts, 2.0);
    assert_eq!(
        idp.idp.introspections() as f64,
        1.0 + timeouts,
        "only calls that got the slot reached the IdP"
    );
}

#[actix_web::test]
async fn connections_to_the_idp_are_kept_alive_and_reused() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    assert!(app.wait_ready().await);
    for _ in 0..20 {
        assert_eq!(app.verify(&idp.mint(admin())).await.status, 200);
    }
    assert_eq!(idp.idp.introspections(), 20);
    // Discovery and 20 sequential introspections: one connection, or two should the pool open a second.
    assert!(
        idp.idp.connections() <= 2,
        "{} connections for 21 requests",
        idp.idp.connections()
    );
}
