use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ironcrest_auth::{ClientCredentials, TokenFetchError};
use ironcrest_config::{Secret, TokenEndpointAuthMethod};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::support::{Idp, jwks};

const SECRET: &str = "s3cr%t+x";

fn client(idp: &Idp, method: TokenEndpointAuthMethod) -> ClientCredentials {
    ClientCredentials::new(
        idp.url("/token"),
        "health-checker".into(),
        Secret::new(SECRET),
        method,
        reqwest::Client::new(),
    )
}

#[tokio::test]
async fn client_secret_basic_sends_encoded_credentials_in_the_header() {
    let idp = Idp::start(jwks(&[])).await;
    let credentials = client(&idp, TokenEndpointAuthMethod::ClientSecretBasic);
    let token = credentials.access_token().await.unwrap();
    assert_eq!(token.expose_secret(), "sa-token-1");

    let requests = idp.token_requests();
    assert_eq!(requests.len(), 1);
    // RFC 6749 §2.3.1: form-urlencoded, then Basic.
    let expected = format!("Basic {}", STANDARD.encode("health-checker:s3cr%25t%2Bx"));
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(expected.as_str())
    );
    assert_eq!(requests[0].body, "grant_type=client_credentials");
}

#[tokio::test]
async fn client_secret_post_sends_credentials_in_the_body() {
    let idp = Idp::start(jwks(&[])).await;
    let credentials = client(&idp, TokenEndpointAuthMethod::ClientSecretPost);
    assert_eq!(
        credentials.access_token().await.unwrap().expose_secret(),
        "sa-token-1"
    );
    let requests = idp.token_requests();
    assert_eq!(requests[0].authorization, None);
    assert_eq!(
        requests[0].body,
        "grant_type=client_credentials&client_id=health-checker&client_secret=s3cr%25t%2Bx"
    );
}

#[tokio::test]
async fn token_is_cached_while_enough_lifetime_remains() {
    let idp = Idp::start(jwks(&[])).await;
    let credentials = client(&idp, TokenEndpointAuthMethod::ClientSecretBasic);
    let (a, b) = tokio::join!(credentials.access_token(), credentials.access_token());
    assert_eq!(a.unwrap().expose_secret(), "sa-token-1");
    assert_eq!(b.unwrap().expose_secret(), "sa-token-1");
    assert!(credentials.access_token().await.is_ok());
    assert_eq!(idp.token_requests().len(), 1, "300 s tokens are reused");
}

#[tokio::test]
async fn short_lived_or_undated_tokens_are_refetched() {
    let idp = Idp::start(jwks(&[])).await;
    let credentials = client(&idp, TokenEndpointAuthMethod::ClientSecretBasic);
    // Less than 60 s of lifetime: always below the refetch threshold.
    idp.set_token_answer(200, json!({"access_token": "short", "expires_in": "45"}));
    credentials.access_token().await.unwrap();
    credentials.access_token().await.unwrap();
    assert_eq!(idp.token_requests().len(), 2);
    // No expires_in: never cached.
    idp.set_token_answer(200, json!({"access_token": "undated"}));
    credentials.access_token().await.unwrap();
    let token = credentials.access_token().await.unwrap();
    assert_eq!(token.expose_secret(), "undated");
    assert_eq!(idp.token_requests().len(), 4);
}

#[tokio::test]
async fn error_status_is_a_token_fetch_error() {
    let idp = Idp::start(jwks(&[])).await;
    idp.set_token_answer(
        401,
        json!({"error": "invalid_client", "error_description": "Invalid client credentials"}),
    );
    let credentials = client(&idp, TokenEndpointAuthMethod::ClientSecretPost);
    let err = credentials.access_token().await.unwrap_err();
    match &err {
        TokenFetchError::Status { status, detail, .. } => {
            assert_eq!(*status, 401);
            assert_eq!(
                detail.as_deref(),
                Some("invalid_client: Invalid client credentials")
            );
        }
        other => panic!("expected Status, got {other:?}"),
    }
    let text = format!("{err} {err:?} {credentials:?}");
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains(SECRET), "the secret leaked: {text}");

    // A failure is not cached: the next call tries again.
    idp.set_token_answer(200, json!({"access_token": "recovered", "expires_in": 300}));
    let token = credentials.access_token().await.unwrap();
    assert_eq!(token.expose_secret(), "recovered");
}

#[tokio::test]
async fn unusable_answers_and_unreachable_endpoints_are_errors() {
    let idp = Idp::start(jwks(&[])).await;
    let credentials = client(&idp, TokenEndpointAuthMethod::ClientSecretBasic);
    for body in [json!({"token_type": "Bearer"}), json!({"access_token": ""})] {
        idp.set_token_answer(200, body);
        assert!(matches!(
            credentials.access_token().await,
            Err(TokenFetchError::InvalidResponse { .. })
        ));
    }
    let unreachable = ClientCredentials::new(
        "http://127.0.0.1:9/token".into(),
        "health-checker".into(),
        Secret::new(SECRET),
        TokenEndpointAuthMethod::ClientSecretBasic,
        reqwest::Client::new(),
    );
    assert!(matches!(
        unreachable.access_token().await,
        Err(TokenFetchError::Request { .. })
    ));
}
