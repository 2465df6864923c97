//! The web page for users (docs/ui.md): a static page and one ES module embedded in the
//! binary, which call the same JSON routes as every other client. Users log in by the OIDC
//! authorization-code flow with PKCE, Ironcrest acting as a confidential client
//! (backend-for-frontend): the tokens stay in a server-side session named by an opaque
//! `HttpOnly` cookie, and [`Ui::session_token`] lets that cookie stand for a bearer token,
//! with an `X-CSRF-Token` header on every state-changing call.

mod idp;
mod session;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ironcrest_config::{Secret, UiConfig};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use idp::Idp;
use session::{LOGIN_COOKIE, LOGIN_TIMEOUT, SESSION_COOKIE, Sessions, Tokens};

/// The header the page sends its session's CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";

/// A session's access token is refreshed when it has less than this left to live.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

pub struct Ui {
    idp: Idp,
    sessions: Sessions,
    /// Cookies are `Secure` when the UI is served over TLS.
    secure_cookies: bool,
    /// The page's absolute URL (the redirect URL without `callback`).
    page_url: String,
    content_security_policy: HeaderValue,
}

impl Ui {
    /// The UI of `config`; `discovery` is `auth.authentication.oidc_discovery_url`, and
    /// `storage_urls` the S3 public URLs the page uploads staged files to.
    pub fn new(
        config: &UiConfig,
        discovery: Option<&str>,
        storage_urls: &[String],
        http: reqwest::Client,
    ) -> Self {
        let issuer = config
            .issuer
            .clone()
            .or_else(|| discovery.map(str::to_string))
            .unwrap_or_default();
        let secret = config
            .client_secret
            .clone()
            .unwrap_or_else(|| Secret::new(""));
        let connect: Vec<&str> = std::iter::once("'self'")
            .chain(storage_urls.iter().map(|url| url.trim_end_matches('/')))
            .collect();
        let policy = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src {}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            connect.join(" ")
        );
        Self {
            idp: Idp::new(
                issuer,
                config.client_id.clone(),
                secret,
                config.redirect_url.clone(),
                config.scope.clone(),
                http,
            ),
            sessions: Sessions::new(
                Duration::from_secs(config.session_lifetime),
                Duration::from_secs(config.idle_timeout),
            ),
            secure_cookies: config.redirect_url.starts_with("https://"),
            page_url: config.redirect_url.trim_end_matches("callback").to_string(),
            content_security_policy: HeaderValue::from_str(&policy)
                .unwrap_or(HeaderValue::from_static("default-src 'none'")),
        }
    }

    /// The access token of the request's session cookie, refreshed if it is about to
    /// expire; `None` without a live session. A state-changing request must carry the
    /// session's CSRF token.
    pub(crate) async fn session_token(&self, parts: &Parts) -> Result<Option<String>, ApiError> {
        let Some(id) = session::cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let Some(session) = self.sessions.get(id) else {
            return Ok(None);
        };
        if !is_safe(&parts.method) {
            check_csrf(&parts.headers, &session.csrf_token)?;
        }
        let mut tokens = session.tokens.lock().await;
        if tokens.expires_at.saturating_duration_since(Instant::now()) < REFRESH_MARGIN {
            let Some(refresh_token) = tokens.refresh_token.as_deref() else {
                return Ok(Some(tokens.access_token.clone()));
            };
            match self.idp.refresh(refresh_token).await {
                Ok(fresh) => *tokens = fresh,
                Err(err) => {
                    tracing::info!(user = %session.username, error = %err.0, "UI session ended: its refresh failed");
                    drop(tokens);
                    self.sessions.remove(id);
                    return Ok(None);
                }
            }
        }
        Ok(Some(tokens.access_token.clone()))
    }

    fn cookie(&self, name: &str, value: &str, path: &str, extra: &str) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let cookie = format!("{name}={value}; Path={path}; HttpOnly{secure}{extra}");
        HeaderValue::from_str(&cookie).expect("cookie values are URL-safe base64")
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn check_csrf(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match sent {
        Some(sent) if session::same_secret(sent, expected) => Ok(()),
        _ => Err(ApiError::Http {
            status: StatusCode::FORBIDDEN,
            message: "A call made with the UI's session cookie must carry the session's \
                      X-CSRF-Token header."
                .into(),
        }),
    }
}

/// `/ui`: the page, its assets, and the login, callback, session and logout routes.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/ui", get(|| async { redirect("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/assets/{name}", get(asset))
        .route("/ui/login", get(login))
        .route("/ui/callback", get(callback))
        .route("/ui/session", get(current_session))
        .route("/ui/logout", post(logout))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            security_headers,
        ))
        .with_state(state)
}

fn ui(state: &AppState) -> &Ui {
    state
        .ui
        .as_deref()
        .expect("the UI router is only built with a UI")
}

async fn security_headers(State(state): State<AppState>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        ui(&state).content_security_policy.clone(),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

async fn index() -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, body) = match name.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "app.css" => ("text/css; charset=utf-8", APP_CSS),
        _ => return ApiError::RouteNotFound.into_response(),
    };
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

/// Starts a login: a fresh `state` (bound to this browser by a cookie) and PKCE verifier.
async fn login(State(state): State<AppState>) -> Result<Response, ApiError> {
    let ui = ui(&state);
    let login_state = session::random_token();
    let code_verifier = session::random_token();
    let url = ui
        .idp
        .authorization_url(&login_state, &code_verifier)
        .await
        .map_err(|err| {
            tracing::warn!(error = %err.0, "UI login: the IdP is not usable");
            ApiError::Http {
                status: StatusCode::BAD_GATEWAY,
                message: "The identity provider cannot be reached; try again later.".into(),
            }
        })?;
    ui.sessions
        .start_login(login_state.clone(), code_verifier)
        .ok_or(ApiError::Http {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "Too many logins in progress; try again later.".into(),
        })?;
    let mut response = redirect(&url);
    let max_age = format!("; SameSite=Lax; Max-Age={}", LOGIN_TIMEOUT.as_secs());
    response.headers_mut().append(
        SET_COOKIE,
        ui.cookie(LOGIN_COOKIE, &login_state, "/ui/callback", &max_age),
    );
    Ok(response)
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The IdP sends the browser back here with a code: exchanged for tokens, which become a
/// session. Any failure sends the browser to the page, which offers to log in again.
async fn callback(
    State(state): State<AppState>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let ui = ui(&state);
    let mut response = match open_session(&state, &query, &headers).await {
        Ok(id) => {
            let mut response = redirect("/ui/");
            response.headers_mut().append(
                SET_COOKIE,
                ui.cookie(SESSION_COOKIE, &id, "/", "; SameSite=Strict"),
            );
            response
        }
        Err(reason) => {
            tracing::warn!(reason, "UI login failed");
            redirect("/ui/#signin-failed")
        }
    };
    response.headers_mut().append(
        SET_COOKIE,
        ui.cookie(
            LOGIN_COOKIE,
            "",
            "/ui/callback",
            "; SameSite=Lax; Max-Age=0",
        ),
    );
    response
}

async fn open_session(
    state: &AppState,
    query: &CallbackQuery,
    headers: &HeaderMap,
) -> Result<String, String> {
    let ui = ui(state);
    if let Some(error) = &query.error {
        return Err(format!("the IdP refused: {error}"));
    }
    let (Some(code), Some(login_state)) = (&query.code, &query.state) else {
        return Err("no code or state".into());
    };
    // The login must have been started by this browser (no login CSRF).
    match session::cookie(headers, LOGIN_COOKIE) {
        Some(bound) if session::same_secret(bound, login_state) => {}
        _ => return Err("the state is not this browser's".into()),
    }
    let login = ui
        .sessions
        .finish_login(login_state)
        .ok_or("unknown or expired state")?;
    let tokens: Tokens = ui
        .idp
        .exchange_code(code, &login.code_verifier)
        .await
        .map_err(|err| err.0)?;
    let verified = state
        .verifier
        .verify(&tokens.access_token)
        .await
        .map_err(|err| format!("the access token is not accepted: {err}"))?;
    if !crate::auth::is_posix_username(&verified.username) {
        return Err("the token's user name is not a POSIX user name".into());
    }
    tracing::info!(user = %verified.username, "UI session opened");
    ui.sessions
        .create(verified.username, tokens)
        .ok_or_else(|| "too many sessions".into())
}

/// The session's user and CSRF token, which the page sends with its state-changing calls.
async fn current_session(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let ui = ui(&state);
    let session = session::cookie(&headers, SESSION_COOKIE).and_then(|id| ui.sessions.get(id));
    match session {
        Some(session) => axum::Json(json!({
            "user": session.username,
            "csrfToken": session.csrf_token,
        }))
        .into_response(),
        None => ApiError::NotAuthenticated.into_response(),
    }
}

/// Ends the session: its tokens are revoked at the IdP and forgotten here. The answer
/// names the IdP's end-session page, which the page offers (the IdP's own login stays
/// until the user ends it there).
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let ui = ui(&state);
    if let Some(id) = session::cookie(&headers, SESSION_COOKIE)
        && let Some(session) = ui.sessions.get(id)
    {
        check_csrf(&headers, &session.csrf_token)?;
        ui.sessions.remove(id);
        let tokens = session.tokens.lock().await;
        let revocations = [
            (tokens.refresh_token.as_deref(), "refresh_token"),
            (Some(tokens.access_token.as_str()), "access_token"),
        ];
        for (token, hint) in revocations {
            if let Some(token) = token
                && let Err(err) = ui.idp.revoke(token, hint).await
            {
                tracing::warn!(user = %session.username, error = %err.0, "UI logout: revocation failed");
            }
        }
        tracing::info!(user = %session.username, "UI session closed");
    }
    let end_session = ui.idp.end_session_url(&ui.page_url).await;
    let mut response = axum::Json(json!({ "endSessionUrl": end_session })).into_response();
    response.headers_mut().append(
        SET_COOKIE,
        ui.cookie(SESSION_COOKIE, "", "/", "; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}
