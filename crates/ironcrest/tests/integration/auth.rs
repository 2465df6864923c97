//! Bad tokens get 401 on every route except liveness and the docs.

use jsonwebtoken::{Algorithm, Header, encode};
use serde_json::json;

use crate::harness::{SYSTEM, TestServer, env, idp_signing_key, now, user_token};

fn protected_routes() -> Vec<String> {
    let mut routes = vec!["/status/systems".to_string()];
    for leaf in ["nodes", "partitions", "reservations", "userinfo"] {
        routes.push(format!("/status/{SYSTEM}/{leaf}"));
    }
    routes
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims(overrides: serde_json::Value) -> serde_json::Value {
    let mut claims = json!({
        "iss": env("IRONCREST_DEV_OIDC_ISSUER"),
        "aud": env("IRONCREST_DEV_OIDC_AUDIENCE"),
        "sub": "ironcrest-dev",
        "preferred_username": "fireuser",
        "iat": now(),
        "exp": now() + 600,
    });
    for (key, value) in overrides.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

#[tokio::test]
async fn bad_tokens_are_refused_everywhere_but_liveness_and_docs() {
    let server = TestServer::start().await;
    let (idp_key, kid) = idp_signing_key();
    let sign = |claims: &serde_json::Value| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.clone());
        encode(&header, claims, &idp_key).unwrap()
    };
    let valid = sign(&claims(json!({})));
    let unsigned = format!(
        "{}.{}.",
        base64url(
            json!({"alg": "none", "typ": "JWT", "kid": kid})
                .to_string()
                .as_bytes()
        ),
        base64url(claims(json!({})).to_string().as_bytes())
    );
    let mut forged_header = Header::new(Algorithm::HS256);
    forged_header.kid = Some(kid.clone());
    let jwks = std::fs::read(env("IRONCREST_DEV_OIDC_JWKS_FILE")).unwrap();
    let confused = encode(
        &forged_header,
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(&jwks),
    )
    .unwrap();

    let bad_tokens: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "Not authenticated"),
        (
            "garbage",
            Some("not-a-jwt".into()),
            "Access token is invalid.",
        ),
        (
            "expired",
            Some(sign(&claims(
                json!({"iat": now() - 7200, "exp": now() - 3600}),
            ))),
            "Access token expired",
        ),
        (
            "wrong audience",
            Some(sign(&claims(json!({"aud": "urn:someone-else"})))),
            "Access token is invalid.",
        ),
        (
            "wrong issuer",
            Some(sign(&claims(json!({"iss": "http://evil.example"})))),
            "Access token is invalid.",
        ),
        (
            "not yet valid",
            Some(sign(&claims(json!({"nbf": now() + 3600})))),
            "Access token is invalid.",
        ),
        ("alg none", Some(unsigned), "Access token is invalid."),
        (
            "algorithm confusion",
            Some(confused),
            "Access token is invalid.",
        ),
        (
            "tampered",
            Some(format!("{}x", &valid[..valid.len() - 1])),
            "Access token is invalid.",
        ),
    ];
    for route in protected_routes() {
        for (what, token, message) in &bad_tokens {
            let response = server.get(&route, token.as_deref()).await;
            assert_eq!(response.status(), 401, "{what} on {route}");
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer",
                "{what} on {route}"
            );
            let body = response.text().await.unwrap();
            if let Some(token) = token {
                assert!(!body.contains(token.as_str()), "{what}: token echoed");
            }
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["message"], *message, "{what} on {route}");
        }
        // The locally minted valid token passes, so each refusal above is about its one defect.
        assert_eq!(
            server.get(&route, Some(&valid)).await.status(),
            200,
            "valid token on {route}"
        );
    }
    for open in ["/status/liveness/", "/openapi.json", "/docs/", "/redoc"] {
        assert_eq!(
            server.get(open, Some("not-a-jwt")).await.status(),
            200,
            "{open}"
        );
    }
}

#[tokio::test]
async fn a_token_without_the_username_claim_is_a_400() {
    let server = TestServer::start().await;
    let (idp_key, kid) = idp_signing_key();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid);
    let mut no_user = claims(json!({}));
    no_user
        .as_object_mut()
        .unwrap()
        .remove("preferred_username");
    let token = encode(&header, &no_user, &idp_key).unwrap();
    let response = server.get("/status/systems", Some(&token)).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Authentication token 'preferred_username' claim is missing"
    );
}

#[tokio::test]
async fn the_real_idp_token_is_accepted() {
    let server = TestServer::start().await;
    let token = user_token().await;
    assert_eq!(
        server.get("/status/systems", Some(&token)).await.status(),
        200
    );
}
