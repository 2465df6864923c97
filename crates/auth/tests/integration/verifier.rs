use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ironcrest_auth::{AuthError, TokenVerifier};
use jsonwebtoken::{Algorithm, EncodingKey};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::{self, ISSUER, Idp, Key, claims, config, jwks, mint, mint_with, now};

/// An IdP serving `rsa-a` (RS256, with `alg`) and a verifier reading it.
async fn rsa_setup(extra: Value) -> (Idp, TokenVerifier) {
    let idp = Idp::start(jwks(&[Key::RsaA.jwk(Some("rsa-a"), Some("RS256"))])).await;
    let mut settings = json!({ "public_certs": [idp.jwks_url()] });
    for (field, value) in extra.as_object().unwrap() {
        settings[field] = value.clone();
    }
    let verifier = support::verifier(&config(settings)).await;
    (idp, verifier)
}

fn invalid_reason(err: AuthError) -> String {
    assert_eq!(err.to_string(), "Access token is invalid.");
    match err {
        AuthError::Invalid { reason } => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_rs256_token_gives_the_username() {
    let (idp, verifier) = rsa_setup(json!({})).await;
    let claims = claims();
    let token = mint(Key::RsaA, Some("rsa-a"), &claims);
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.username, "alice");
    assert_eq!(verified.expires_at, claims["exp"].as_u64().unwrap());
    assert_eq!(verified.access_token.expose_secret(), token);
    // The token never shows in Debug output.
    assert!(!format!("{verified:?}").contains(&token));
    assert!(!format!("{verifier:?}").contains(&token));
    assert_eq!(idp.jwks_fetches(), 1, "one load at start, none per request");
}

#[tokio::test]
async fn username_claim_is_configurable() {
    let (_idp, verifier) = rsa_setup(json!({ "username_claim": "sub" })).await;
    let token = mint(Key::RsaA, Some("rsa-a"), &claims());
    assert_eq!(
        verifier.verify(&token).await.unwrap().username,
        "0b6c-alice"
    );
}

#[tokio::test]
async fn es256_key_without_alg_is_inferred() {
    let idp = Idp::start(jwks(&[Key::EcP256.jwk(Some("ec-1"), None)])).await;
    let verifier = support::verifier(&config(json!({ "public_certs": [idp.jwks_url()] }))).await;
    let token = mint(Key::EcP256, Some("ec-1"), &claims());
    assert_eq!(verifier.verify(&token).await.unwrap().username, "alice");
}

#[tokio::test]
async fn keyless_ed25519_jwk_serves_tokens_without_kid() {
    let idp = Idp::start(jwks(&[
        Key::RsaA.jwk(Some("rsa-a"), None),
        Key::Ed25519.jwk(None, None),
    ]))
    .await;
    let verifier = support::verifier(&config(json!({ "public_certs": [idp.jwks_url()] }))).await;
    let token = mint(Key::Ed25519, None, &claims());
    assert_eq!(verifier.verify(&token).await.unwrap().username, "alice");
    // A token without kid is not checked against keys that have one.
    let token = mint(Key::RsaA, None, &claims());
    let err = invalid_reason(verifier.verify(&token).await.unwrap_err());
    assert!(err.contains("algorithm"), "{err}");
}

#[tokio::test]
async fn configured_jwk_algorithm_applies_to_keys_without_alg() {
    let idp = Idp::start(jwks(&[Key::RsaA.jwk(Some("rsa-a"), None)])).await;
    let settings = json!({ "public_certs": [idp.jwks_url()], "jwk_algorithm": "PS256" });
    let verifier = support::verifier(&config(settings)).await;
    let pem = include_bytes!("../keys/rsa-a.pem");
    let ps256 = mint_with(
        Algorithm::PS256,
        &EncodingKey::from_rsa_pem(pem).unwrap(),
        Some("rsa-a"),
        &claims(),
    );
    assert_eq!(verifier.verify(&ps256).await.unwrap().username, "alice");
    let rs256 = mint(Key::RsaA, Some("rsa-a"), &claims());
    invalid_reason(verifier.verify(&rs256).await.unwrap_err());
}

#[tokio::test]
async fn expired_token_is_refused() {
    let (_idp, verifier) = rsa_setup(json!({})).await;
    let mut claims = claims();
    claims["exp"] = (now() - 60).into();
    let err = verifier
        .verify(&mint(Key::RsaA, Some("rsa-a"), &claims))
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::Expired);
    assert_eq!(err.to_string(), "Access token expired");
}

#[tokio::test]
async fn token_without_exp_is_refused() {
    let (_idp, verifier) = rsa_setup(json!({})).await;
    let mut claims = claims();
    claims.as_object_mut().unwrap().remove("exp");
    let reason = invalid_reason(
        verifier
            .verify(&mint(Key::RsaA, Some("rsa-a"), &claims))
            .await
            .unwrap_err(),
    );
    assert!(reason.contains("'exp'"), "{reason}");
}

#[tokio::test]
async fn token_not_yet_valid_is_refused() {
    let (_idp, verifier) = rsa_setup(json!({})).await;
    let mut claims = claims();
    claims["nbf"] = (now() + 120).into();
    let token = mint(Key::RsaA, Some("rsa-a"), &claims);
    let reason = invalid_reason(verifier.verify(&token).await.unwrap_err());
    assert!(reason.contains("nbf"), "{reason}");
    // Within the clock-skew leeway it passes.
    claims["nbf"] = (now() + 2).into();
    let token = mint(Key::RsaA, Some("rsa-a"), &claims);
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn forgery_with_a_known_kid_is_refused() {
    let (idp, verifier) = rsa_setup(json!({})).await;
    let token = mint(Key::RsaAttacker, Some("rsa-a"), &claims());
    let reason = invalid_reason(verifier.verify(&token).await.unwrap_err());
    assert!(reason.contains("signature"), "{reason}");
    assert_eq!(
        idp.jwks_fetches(),
        1,
        "a known kid never triggers a refresh"
    );
}

#[tokio::test]
async fn alg_none_is_refused() {
    let (_idp, verifier) = rsa_setup(json!({})).await;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"rsa-a"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        let err = verifier.verify(&token).await.unwrap_err();
        invalid_reason(err);
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let (_idp, verifier) = rsa_setup(json!({})).await;
    let pem = include_bytes!("../keys/rsa-a.pub.pem");
    let der = include_bytes!("../keys/rsa-a.pub.der");
    for secret in [&pem[..], &der[..]] {
        for kid in [Some("rsa-a"), None] {
            let token = mint_with(
                Algorithm::HS256,
                &EncodingKey::from_secret(secret),
                kid,
                &claims(),
            );
            let err = verifier.verify(&token).await.unwrap_err();
            match kid {
                Some(_) => {
                    let reason = invalid_reason(err);
                    assert!(reason.contains("algorithm"), "{reason}");
                }
                // No keyless key is loaded: there is nothing to check it with.
                None => assert!(matches!(err, AuthError::UnknownKey { kid: None })),
            }
        }
    }
    // Another asymmetric algorithm than the key's is refused too.
    let rs384 = mint_with(
        Algorithm::RS384,
        &EncodingKey::from_rsa_pem(include_bytes!("../keys/rsa-a.pem")).unwrap(),
        Some("rsa-a"),
        &claims(),
    );
    invalid_reason(verifier.verify(&rs384).await.unwrap_err());
}

#[tokio::test]
async fn audience_is_checked_only_when_configured() {
    let (_idp, strict) = rsa_setup(json!({ "audiences": ["firecrest", "hpc-api"] })).await;
    let mut claims = claims();
    assert!(
        strict
            .verify(&mint(Key::RsaA, Some("rsa-a"), &claims))
            .await
            .is_ok()
    );

    claims["aud"] = json!(["account", "hpc-api"]);
    assert!(
        strict
            .verify(&mint(Key::RsaA, Some("rsa-a"), &claims))
            .await
            .is_ok()
    );

    claims["aud"] = "account".into();
    let token = mint(Key::RsaA, Some("rsa-a"), &claims);
    let reason = invalid_reason(strict.verify(&token).await.unwrap_err());
    assert!(reason.contains("aud"), "{reason}");

    claims.as_object_mut().unwrap().remove("aud");
    let token = mint(Key::RsaA, Some("rsa-a"), &claims);
    invalid_reason(strict.verify(&token).await.unwrap_err());

    // Without configured audiences any `aud` (or none) passes.
    let (_idp, lax) = rsa_setup(json!({})).await;
    claims["aud"] = "account".into();
    assert!(
        lax.verify(&mint(Key::RsaA, Some("rsa-a"), &claims))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn issuer_is_checked_when_configured() {
    let (_idp, verifier) = rsa_setup(json!({ "issuer": ISSUER })).await;
    let mut claims = claims();
    assert!(
        verifier
            .verify(&mint(Key::RsaA, Some("rsa-a"), &claims))
            .await
            .is_ok()
    );

    claims["iss"] = "https://evil.test".into();
    let token = mint(Key::RsaA, Some("rsa-a"), &claims);
    let reason = invalid_reason(verifier.verify(&token).await.unwrap_err());
    assert!(reason.contains("iss"), "{reason}");

    claims.as_object_mut().unwrap().remove("iss");
    let token = mint(Key::RsaA, Some("rsa-a"), &claims);
    invalid_reason(verifier.verify(&token).await.unwrap_err());
}

#[tokio::test]
async fn tokens_about_to_expire_are_refused() {
    let (_idp, verifier) = rsa_setup(json!({ "min_token_ttl": 60 })).await;
    let mut claims = claims();
    claims["exp"] = (now() + 30).into();
    let err = verifier
        .verify(&mint(Key::RsaA, Some("rsa-a"), &claims))
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::ExpiresTooSoon { min_ttl: 60 });
    assert_eq!(
        err.to_string(),
        "Access token expires too soon (less than 60s remaining)."
    );
    claims["exp"] = (now() + 120).into();
    assert!(
        verifier
            .verify(&mint(Key::RsaA, Some("rsa-a"), &claims))
            .await
            .is_ok()
    );
}

/// A token verified once is remembered, but never past `min_token_ttl` before its expiry.
#[tokio::test]
async fn a_remembered_token_still_expires_on_time() {
    let (_idp, verifier) = rsa_setup(json!({ "min_token_ttl": 5 })).await;
    let mut claims = claims();
    let exp = now() + 7;
    claims["exp"] = exp.into();
    let token = mint(Key::RsaA, Some("rsa-a"), &claims);
    assert_eq!(verifier.verify(&token).await.unwrap().username, "alice");
    assert_eq!(verifier.verify(&token).await.unwrap().username, "alice");
    // Until less than min_token_ttl (5 s) is left: the clock's next seconds.
    while now() + 5 <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        AuthError::ExpiresTooSoon { min_ttl: 5 }
    );
}

#[tokio::test]
async fn missing_username_claim_is_a_400() {
    let (_idp, verifier) = rsa_setup(json!({})).await;
    let mut claims = claims();
    for username in [None, Some(json!(42)), Some(json!(""))] {
        match username {
            Some(value) => claims["preferred_username"] = value,
            None => {
                claims.as_object_mut().unwrap().remove("preferred_username");
            }
        }
        let err = verifier
            .verify(&mint(Key::RsaA, Some("rsa-a"), &claims))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Authentication token 'preferred_username' claim is missing"
        );
    }
}

#[tokio::test]
async fn garbage_is_refused_without_touching_the_idp() {
    let (idp, verifier) = rsa_setup(json!({})).await;
    let good = mint(Key::RsaA, Some("rsa-a"), &claims());
    let (head, rest) = good.split_once('.').unwrap();
    let tampered_payload = {
        let (payload, signature) = rest.split_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(payload).unwrap();
        let text = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("alice", "admin");
        bytes = text.into_bytes();
        format!("{head}.{}.{signature}", URL_SAFE_NO_PAD.encode(bytes))
    };
    for token in [
        String::new(),
        "not-a-jwt".into(),
        "a.b.c".into(),
        format!("{head}.!!!.???"),
        format!("{good}x"),
        tampered_payload,
    ] {
        let err = verifier.verify(&token).await.unwrap_err();
        if token.len() > 8 {
            let text = format!("{err} {err:?}");
            assert!(
                !text.contains(&token),
                "error text echoes the token: {text}"
            );
        }
        invalid_reason(err);
    }
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn rotated_key_is_found_by_one_refresh() {
    let (idp, verifier) = rsa_setup(json!({})).await;
    idp.set_jwks(jwks(&[
        Key::RsaA.jwk(Some("rsa-a"), Some("RS256")),
        Key::RsaB.jwk(Some("rsa-b"), Some("RS256")),
    ]));
    let token = mint(Key::RsaB, Some("rsa-b"), &claims());
    assert_eq!(verifier.verify(&token).await.unwrap().username, "alice");
    assert_eq!(idp.jwks_fetches(), 2);
    // Now it is known: no further fetch.
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(idp.jwks_fetches(), 2);
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_fetch() {
    // No rate limit at all: only the sharing keeps this at one fetch.
    let (idp, verifier) = rsa_setup(json!({ "jwks_min_refresh_interval": 0 })).await;
    idp.set_jwks(jwks(&[Key::RsaB.jwk(Some("rsa-b"), None)]));
    idp.set_jwks_delay(Duration::from_millis(300));
    let token = mint(Key::RsaB, Some("rsa-b"), &claims());
    let checks = (0..20).map(|_| {
        let verifier = verifier.clone();
        let token = token.clone();
        tokio::spawn(async move { verifier.verify(&token).await })
    });
    for result in futures::future::join_all(checks).await {
        assert_eq!(result.unwrap().unwrap().username, "alice");
    }
    assert_eq!(
        idp.jwks_fetches(),
        2,
        "start-up load plus exactly one refresh"
    );
}

#[tokio::test]
async fn unknown_kid_refreshes_are_rate_limited() {
    let (idp, verifier) = rsa_setup(json!({ "jwks_min_refresh_interval": 1 })).await;
    let ghost = |kid: &str| mint(Key::RsaAttacker, Some(kid), &claims());

    let err = verifier.verify(&ghost("ghost-1")).await.unwrap_err();
    assert_eq!(
        err,
        AuthError::UnknownKey {
            kid: Some("ghost-1".into())
        }
    );
    assert_eq!(err.to_string(), "Token's public key not found.");
    assert_eq!(idp.jwks_fetches(), 2);

    // Within the interval another unknown kid does not refetch, even if the key now exists.
    idp.set_jwks(jwks(&[
        Key::RsaA.jwk(Some("rsa-a"), None),
        Key::RsaB.jwk(Some("rsa-b"), None),
    ]));
    assert!(verifier.verify(&ghost("ghost-2")).await.is_err());
    let rotated = mint(Key::RsaB, Some("rsa-b"), &claims());
    assert!(matches!(
        verifier.verify(&rotated).await,
        Err(AuthError::UnknownKey { .. })
    ));
    assert_eq!(idp.jwks_fetches(), 2);

    // After it, the next unknown kid refetches.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(verifier.verify(&rotated).await.is_ok());
    assert_eq!(idp.jwks_fetches(), 3);
}

#[tokio::test]
async fn failed_refresh_keeps_the_old_keys() {
    let (idp, verifier) = rsa_setup(json!({ "jwks_min_refresh_interval": 0 })).await;
    idp.set_jwks_status(503);
    let err = verifier
        .verify(&mint(Key::RsaB, Some("rsa-b"), &claims()))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::UnknownKey { .. }));
    assert_eq!(idp.jwks_fetches(), 2);
    // A document with no usable key is a failure too, not an empty key set.
    idp.set_jwks_status(200);
    idp.set_jwks(jwks(&[
        json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
    ]));
    assert!(
        verifier
            .verify(&mint(Key::RsaB, Some("rsa-b"), &claims()))
            .await
            .is_err()
    );
    assert_eq!(idp.jwks_fetches(), 3);

    let token = mint(Key::RsaA, Some("rsa-a"), &claims());
    assert_eq!(verifier.verify(&token).await.unwrap().username, "alice");
}

#[tokio::test]
async fn idp_down_at_start_then_keys_load_on_first_use() {
    let idp = Idp::start(jwks(&[Key::RsaA.jwk(Some("rsa-a"), None)])).await;
    idp.set_jwks_status(500);
    // A large rate limit: the failed start-up load must not block the first on-demand load.
    let settings = json!({ "public_certs": [idp.jwks_url()], "jwks_min_refresh_interval": 3600 });
    let verifier = support::verifier(&config(settings)).await;
    assert_eq!(idp.jwks_fetches(), 1);
    idp.set_jwks_status(200);
    let token = mint(Key::RsaA, Some("rsa-a"), &claims());
    assert_eq!(verifier.verify(&token).await.unwrap().username, "alice");
    assert_eq!(idp.jwks_fetches(), 2);
}

#[tokio::test]
async fn periodic_refresh_picks_up_rotation_and_stops_on_shutdown() {
    let idp = Idp::start(jwks(&[Key::RsaA.jwk(Some("rsa-a"), None)])).await;
    let settings = json!({
        "public_certs": [idp.jwks_url()],
        "jwks_refresh_interval": 1,
        "jwks_min_refresh_interval": 3600,
    });
    let verifier = support::verifier(&config(settings)).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(verifier.clone().refresh_periodically(async {
        let _ = stopped.await;
    }));
    // Verified (and so remembered) before the IdP withdraws its key.
    let old = mint(Key::RsaA, Some("rsa-a"), &claims());
    assert!(verifier.verify(&old).await.is_ok());
    idp.set_jwks(jwks(&[Key::RsaB.jwk(Some("rsa-b"), None)]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while idp.jwks_fetches() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no periodic refresh"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Found through the periodic load: the on-demand one is rate-limited by it.
    let token = mint(Key::RsaB, Some("rsa-b"), &claims());
    assert!(verifier.verify(&token).await.is_ok());
    // The old key is gone, and a token remembered under it is checked again.
    assert!(matches!(
        verifier.verify(&old).await,
        Err(AuthError::UnknownKey { .. })
    ));

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("refresh loop stops on shutdown")
        .unwrap();
    let fetches = idp.jwks_fetches();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(idp.jwks_fetches(), fetches);
}

#[tokio::test]
async fn discovery_document_leads_to_the_jwks() {
    let idp = Idp::start(jwks(&[Key::RsaA.jwk(Some("rsa-a"), Some("RS256"))])).await;
    let settings = json!({ "oidc_discovery_url": idp.url("/realms/hpc/") });
    let verifier = support::verifier(&config(settings)).await;
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches()), (1, 1));
    let token = mint(Key::RsaA, Some("rsa-a"), &claims());
    assert_eq!(verifier.verify(&token).await.unwrap().username, "alice");

    let full = idp.url("/realms/hpc/.well-known/openid-configuration");
    let verifier = support::verifier(&config(json!({ "oidc_discovery_url": full }))).await;
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches()), (2, 2));
}

#[tokio::test]
async fn file_jwks_is_loaded_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let write = |keys: Value| std::fs::write(&path, keys.to_string()).unwrap();
    write(jwks(&[Key::EcP256.jwk(Some("ec-1"), None)]));
    let settings = json!({
        "public_certs": [format!("file://{}", path.display())],
        "jwks_min_refresh_interval": 0,
    });
    let verifier = support::verifier(&config(settings)).await;
    let token = mint(Key::EcP256, Some("ec-1"), &claims());
    assert_eq!(verifier.verify(&token).await.unwrap().username, "alice");

    write(jwks(&[Key::RsaB.jwk(Some("rsa-b"), None)]));
    let token = mint(Key::RsaB, Some("rsa-b"), &claims());
    assert_eq!(verifier.verify(&token).await.unwrap().username, "alice");
}

#[tokio::test]
async fn keys_from_several_sources_are_combined() {
    let idp = Idp::start(jwks(&[Key::RsaA.jwk(Some("rsa-a"), None)])).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(
        &path,
        jwks(&[Key::EcP256.jwk(Some("ec-1"), None)]).to_string(),
    )
    .unwrap();
    let settings = json!({
        "public_certs": [idp.jwks_url(), format!("file://{}", path.display())],
    });
    let verifier = support::verifier(&config(settings)).await;
    for (key, kid) in [(Key::RsaA, "rsa-a"), (Key::EcP256, "ec-1")] {
        let token = mint(key, Some(kid), &claims());
        assert!(verifier.verify(&token).await.is_ok(), "{kid}");
    }
}

#[tokio::test]
async fn unusable_configuration_is_a_setup_error() {
    let client = reqwest::Client::new();
    for settings in [
        json!({ "public_certs": ["ftp://idp/certs"] }),
        json!({ "public_certs": [] }),
        json!({ "public_certs": ["http://127.0.0.1:9/jwks"], "jwk_algorithm": "HS256" }),
        json!({ "public_certs": ["http://127.0.0.1:9/jwks"], "jwks_refresh_interval": 0 }),
    ] {
        assert!(
            TokenVerifier::new(&config(settings.clone()), client.clone())
                .await
                .is_err(),
            "{settings}"
        );
    }
}
