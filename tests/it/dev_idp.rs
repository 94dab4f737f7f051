//! The ZITADEL double itself, over real HTTP: an independent OIDC client library (openidconnect) discovers it and
//! verifies its JWTs with the key set it fetched; the key set's headers, faults and counter; rotation in ZITADEL's
//! order; introspection of its own JWTs (revocation and retired keys included); assertions without `jti`.

use std::time::Duration;

use base64::Engine;
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm, CoreProviderMetadata};
use openidconnect::{ClientId, HttpRequest, HttpResponse, IssuerUrl, JsonWebKey, Nonce};
use serde_json::{Value, json};
use tokengate::dev_idp::{JwksFaults, KeyAlg, KeyState, SigningKey, TokenSpec};
use tokengate::token::introspect::ASSERTION_TYPE;
use tokengate::token::introspect::keyfile::KeyFile;

use crate::helpers::TestIdp;

fn http() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(10)).finish()
}

/// awc's errors are neither `Send` nor `Sync`; openidconnect needs an `Error`, which this is.
fn failed(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// openidconnect's HTTP seam (any `Fn(HttpRequest) -> Future<Result<HttpResponse, E>>`), carried out by awc.
async fn send(client: &awc::Client, req: HttpRequest) -> Result<HttpResponse, std::io::Error> {
    let method = awc::http::Method::from_bytes(req.method().as_str().as_bytes()).map_err(failed)?;
    let mut outgoing = client.request(method, req.uri().to_string());
    for (name, value) in req.headers() {
        outgoing = outgoing.insert_header((name.as_str(), value.as_bytes()));
    }
    let mut answer = outgoing.send_body(req.body().clone()).await.map_err(failed)?;
    let body = answer.body().await.map_err(failed)?;
    let mut response = openidconnect::http::Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        response = response.header(name.as_str(), value.as_bytes());
    }
    response.body(body.to_vec()).map_err(failed)
}

fn segment(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[actix_web::test]
async fn an_oidc_client_library_discovers_the_double_and_verifies_its_jwts() {
    let idp = TestIdp::start().await;
    let client = http();
    let via_awc = |req: HttpRequest| send(&client, req);
    let issuer = IssuerUrl::new(idp.idp.issuer().to_string()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &via_awc)
        .await
        .expect("discovery and key-set fetch over plain http on 127.0.0.1");
    assert_eq!(metadata.issuer(), &issuer);
    assert_eq!(
        metadata.jwks_uri().as_str(),
        format!("{}/oauth/v2/keys", idp.idp.issuer())
    );
    assert_eq!(idp.idp.jwks_fetches(), 1, "discovery fetched the key set once");

    // A ZITADEL JWT access token carries every claim an ID token needs (iss, sub, aud, exp, iat), so
    // openidconnect's ID-token verifier (it has none for access tokens) checks signature, issuer, audience and
    // lifetime; several audiences and no nonce are normal for an access token.
    let algs = [KeyAlg::RS256, KeyAlg::ES256, KeyAlg::EdDSA, KeyAlg::PS256];
    let mut tokens = vec![idp.mint_jwt(TokenSpec::default().roles(&["admin"]))];
    for alg in &algs[1..] {
        let kid = idp.idp.publish_next_key(*alg).unwrap();
        tokens.push(idp.idp.mint_jwt_with_key(TokenSpec::default(), &kid).unwrap());
    }
    let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &via_awc)
        .await
        .unwrap();
    let published: Vec<String> = metadata
        .jwks()
        .keys()
        .iter()
        .filter_map(|k| k.key_id().map(|id| id.to_string()))
        .collect();
    assert_eq!(
        published.len(),
        algs.len(),
        "every key parsed by openidconnect: {published:?}"
    );
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(idp.idp.project_id().to_string()),
        issuer.clone(),
        metadata.jwks().clone(),
    )
    .set_allowed_algs([
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::EdDsa,
        CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    ])
    .set_other_audience_verifier_fn(|_| true);
    let no_nonce = |_: Option<&Nonce>| Ok(());
    for (alg, jwt) in algs.iter().zip(&tokens) {
        assert_eq!(segment(jwt, 0)["alg"], alg.name());
        let token: CoreIdToken = jwt.parse().unwrap();
        let claims = token
            .claims(&verifier, no_nonce)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(claims.subject().as_str(), "user-1");
    }

    // The verifier really checks: a changed payload, or a key it never fetched, is refused.
    let first = &tokens[0];
    let mut claims = segment(first, 1);
    claims["sub"] = json!("mallory");
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let parts: Vec<&str> = first.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    let token: CoreIdToken = forged.parse().unwrap();
    assert!(token.claims(&verifier, no_nonce).is_err(), "tampered payload");
    let stranger = SigningKey::generate(KeyAlg::RS256, "999999999999999999").unwrap();
    let foreign = idp.idp.mint_jwt_signed_by(TokenSpec::default(), &stranger).unwrap();
    let token: CoreIdToken = foreign.parse().unwrap();
    assert!(token.claims(&verifier, no_nonce).is_err(), "unknown key");
}

#[actix_web::test]
async fn the_key_set_is_served_as_zitadel_serves_it() {
    let idp = TestIdp::start().await;
    let client = http();
    let discovery: Value = client
        .get(format!("{}/.well-known/openid-configuration", idp.idp.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for field in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "introspection_endpoint",
        "userinfo_endpoint",
        "revocation_endpoint",
        "end_session_endpoint",
        "jwks_uri",
        "response_types_supported",
        "grant_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "request_object_signing_alg_values_supported",
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "scopes_supported",
        "claims_supported",
        "code_challenge_methods_supported",
    ] {
        assert!(!discovery[field].is_null(), "{field}");
    }
    let mut answer = client
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers().get("cache-control").unwrap(),
        "max-age=300, must-revalidate"
    );
    assert_eq!(answer.headers().get("content-type").unwrap(), "application/json");
    let set: Value = answer.json().await.unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"].as_str().unwrap(), idp.idp.signing_kid().unwrap());
    assert_eq!(
        (&keys[0]["kty"], &keys[0]["alg"], &keys[0]["use"]),
        (&json!("RSA"), &json!("RS256"), &json!("sig"))
    );
    assert_eq!(idp.idp.jwks_fetches(), 1);
    let stats: Value = client
        .get(format!("{}/dev/stats", idp.idp.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["jwks_fetches"], 1);
    assert_eq!(stats["signing_kid"], keys[0]["kid"]);
}

#[actix_web::test]
async fn key_set_faults_fail_it_as_zitadel_once_did() {
    let idp = TestIdp::start().await;
    let url = format!("{}/oauth/v2/keys", idp.idp.issuer());
    let client = http();
    let fetch = || async { client.get(&url).send().await };

    idp.idp.set_jwks_faults(JwksFaults {
        status: Some(500),
        ..JwksFaults::default()
    });
    assert_eq!(fetch().await.unwrap().status(), 500);

    idp.idp.set_jwks_faults(JwksFaults {
        empty: true,
        ..JwksFaults::default()
    });
    let empty: Value = fetch().await.unwrap().json().await.unwrap();
    assert_eq!(empty, json!({"keys": []}), "zitadel#7714");

    // Set over HTTP, as a benchmark or a shell would.
    let set = client
        .post(format!("{}/dev/faults/jwks", idp.idp.issuer()))
        .send_json(&json!({"hang": true}))
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let impatient = awc::Client::builder().timeout(Duration::from_millis(300)).finish();
    assert!(impatient.get(&url).send().await.is_err(), "hangs");

    idp.idp.set_jwks_faults(JwksFaults::default());
    let set: Value = fetch().await.unwrap().json().await.unwrap();
    assert_eq!(set["keys"].as_array().unwrap().len(), 1);
    assert_eq!(idp.idp.jwks_fetches(), 4, "every fetch is counted, whatever its answer");
}

/// What the double's introspection says about `token`, asked by a Basic-authenticated client of the project.
async fn introspect(idp: &TestIdp, token: &str) -> Value {
    idp.idp.add_basic_client("probe", "secret");
    http()
        .post(format!("{}/oauth/v2/introspect", idp.idp.issuer()))
        .basic_auth("probe", "secret")
        .send_form(&[("token", token)])
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn post(idp: &TestIdp, path: &str) -> (u16, Value) {
    let mut answer = http().post(format!("{}{path}", idp.idp.issuer())).send().await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap_or(Value::Null))
}

#[actix_web::test]
async fn rotation_publishes_the_next_key_before_it_signs() {
    let idp = TestIdp::start().await;
    let first = idp.idp.signing_kid().unwrap();
    let old = idp.idp.mint_jwt(TokenSpec::default()).unwrap();

    let (status, next) = post(&idp, "/dev/keys/next").await;
    assert_eq!(status, 200);
    let next_kid = next["kid"].as_str().unwrap().to_string();
    assert_eq!(
        next["keys"],
        json!([{"kid": first, "state": "active"}, {"kid": next_kid, "state": "next"}])
    );
    assert_eq!(idp.idp.jwks().unwrap().keys.len(), 2, "published");
    let before = idp.idp.mint_jwt(TokenSpec::default()).unwrap();
    assert_eq!(segment(&before, 0)["kid"], first, "but not signing yet");

    let (status, active) = post(&idp, "/dev/keys/activate").await;
    assert_eq!((status, active["kid"].as_str()), (200, Some(next_kid.as_str())));
    let after = idp.idp.mint_jwt(TokenSpec::default()).unwrap();
    assert_eq!(segment(&after, 0)["kid"], next_kid);
    assert_eq!(
        idp.idp.keys().unwrap(),
        vec![
            (first.clone(), KeyState::Previous),
            (next_kid.clone(), KeyState::Active)
        ]
    );
    assert_eq!(
        introspect(&idp, &old).await["active"],
        true,
        "the old key still verifies its tokens"
    );
    assert_eq!(post(&idp, "/dev/keys/activate").await.0, 409, "nothing pending");

    assert_eq!(
        post(&idp, &format!("/dev/keys/retire?kid={next_kid}")).await.0,
        409,
        "the signing key stays"
    );
    assert_eq!(post(&idp, "/dev/keys/retire?kid=1").await.0, 404);
    assert_eq!(post(&idp, &format!("/dev/keys/retire?kid={first}")).await.0, 200);
    assert_eq!(idp.idp.jwks().unwrap().keys.len(), 1);
    assert_eq!(
        introspect(&idp, &old).await,
        json!({"active": false}),
        "a retired key's tokens can no longer be verified"
    );
    assert_eq!(introspect(&idp, &after).await["active"], true);

    let (status, rotated) = post(&idp, "/dev/keys/rotate").await;
    assert_eq!(status, 200);
    assert_ne!(rotated["kid"], json!(next_kid));
    assert_eq!(idp.idp.signing_kid().unwrap(), rotated["kid"].as_str().unwrap());
    assert_eq!(post(&idp, "/dev/keys/next?alg=HS256").await.0, 400, "no symmetric keys");
}

#[actix_web::test]
async fn its_introspection_answers_for_its_own_jwts() {
    let idp = TestIdp::start().await;
    let mut minted = http()
        .post(format!(
            "{}/dev/token?sub=alice&role=admin&format=jwt",
            idp.idp.issuer()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), 200);
    let minted: Value = minted.json().await.unwrap();
    let jwt = minted["access_token"].as_str().unwrap();

    let header = segment(jwt, 0);
    assert_eq!((&header["alg"], &header["typ"]), (&json!("RS256"), &json!("JWT")));
    let claims = segment(jwt, 1);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], idp.idp.issuer());
    assert!(claims["urn:zitadel:iam:org:project:roles"]["admin"].is_object());
    assert!(
        claims.get("email").is_none() && claims.get("scope").is_none(),
        "{claims}"
    );

    let answer = introspect(&idp, jwt).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["sub"], "alice");
    assert_eq!(answer["jti"], claims["jti"], "the same token");
    assert_eq!(
        answer["email"], "user-1@example.com",
        "introspection returns the full user info"
    );

    let mut tampered = jwt.to_string();
    tampered.push('A');
    assert_eq!(introspect(&idp, &tampered).await, json!({"active": false}));
    idp.idp.revoke(jwt);
    assert_eq!(introspect(&idp, jwt).await, json!({"active": false}), "revoked");

    let bad = http()
        .post(format!("{}/dev/token?format=jws", idp.idp.issuer()))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[actix_web::test]
async fn a_client_assertion_without_jti_is_accepted_as_zitadel_accepts_it() {
    let idp = TestIdp::start().await;
    let key = KeyFile::load(&idp.key_file).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims =
        json!({"iss": key.client_id, "sub": key.client_id, "aud": idp.idp.issuer(), "iat": now, "exp": now + 60});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.key_id.clone());
    let assertion = jsonwebtoken::encode(&header, &claims, &key.encoding_key()).unwrap();
    let token = idp.mint(TokenSpec::default());
    let ask = |assertion: String| {
        let token = token.clone();
        let url = format!("{}/oauth/v2/introspect", idp.idp.issuer());
        async move {
            let mut answer = http()
                .post(url)
                .send_form(&[
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", assertion.as_str()),
                    ("token", token.as_str()),
                ])
                .await
                .unwrap();
            (answer.status().as_u16(), answer.json::<Value>().await.unwrap())
        }
    };
    let (status, answer) = ask(assertion).await;
    assert_eq!((status, &answer["active"]), (200, &json!(true)), "{answer}");

    // The same assertion with the wrong audience is refused, so acceptance above was the checks passing.
    let wrong = json!({"iss": key.client_id, "sub": key.client_id, "aud": format!("{}/", idp.idp.issuer()), "iat": now, "exp": now + 60});
    let refused = jsonwebtoken::encode(&header, &wrong, &key.encoding_key()).unwrap();
    assert_eq!(ask(refused).await, (400, json!({"error": "unauthorized_client"})));
}
