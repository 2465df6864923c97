//! Where JWKS documents come from: an http(s) URL, a `file://` path, or an OIDC discovery
//! document naming the JWKS URL (`jwks_uri`), looked up again on every load.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::AuthSetupError;

/// Timeout of one HTTP fetch (a discovery document or a JWKS).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

const WELL_KNOWN: &str = "/.well-known/openid-configuration";

#[derive(Debug)]
pub(crate) enum KeySource {
    Url(String),
    File(PathBuf),
    /// The full URL of the discovery document.
    Discovery(String),
}

/// Why one source could not be loaded (logged; the source keeps its previous keys).
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a JWKS/discovery document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("discovery document's jwks_uri is not an http(s) URL")]
    BadJwksUri,
    #[error("no usable signature key in the JWKS")]
    NoUsableKeys,
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    jwks_uri: String,
}

fn is_http(location: &str) -> bool {
    location.starts_with("https://") || location.starts_with("http://")
}

impl KeySource {
    /// A `public_certs` entry: an http(s) URL or `file:///path`.
    pub(crate) fn from_location(location: &str) -> Result<Self, AuthSetupError> {
        if let Some(path) = location.strip_prefix("file://") {
            Ok(KeySource::File(PathBuf::from(path)))
        } else if is_http(location) {
            Ok(KeySource::Url(location.to_owned()))
        } else {
            Err(AuthSetupError::InvalidLocation {
                field: "public_certs",
                location: location.to_owned(),
            })
        }
    }

    /// `oidc_discovery_url`: the issuer URL, with or without the well-known suffix.
    pub(crate) fn discovery(url: &str) -> Result<Self, AuthSetupError> {
        if !is_http(url) {
            return Err(AuthSetupError::InvalidLocation {
                field: "oidc_discovery_url",
                location: url.to_owned(),
            });
        }
        let url = if url.ends_with(WELL_KNOWN) {
            url.to_owned()
        } else {
            format!("{}{WELL_KNOWN}", url.trim_end_matches('/'))
        };
        Ok(KeySource::Discovery(url))
    }

    /// The location, for logs.
    pub(crate) fn describe(&self) -> String {
        match self {
            KeySource::Url(url) | KeySource::Discovery(url) => url.clone(),
            KeySource::File(path) => format!("file://{}", path.display()),
        }
    }

    /// The raw JWKS document.
    pub(crate) async fn fetch(&self, http: &reqwest::Client) -> Result<Vec<u8>, LoadError> {
        match self {
            KeySource::Url(url) => get(http, url).await,
            KeySource::File(path) => Ok(tokio::fs::read(path).await?),
            KeySource::Discovery(url) => {
                let document: DiscoveryDocument = serde_json::from_slice(&get(http, url).await?)?;
                if !is_http(&document.jwks_uri) {
                    return Err(LoadError::BadJwksUri);
                }
                tracing::debug!(jwks.discovery = %url, jwks.url = %document.jwks_uri, "discovered JWKS URL");
                get(http, &document.jwks_uri).await
            }
        }
    }
}

async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, LoadError> {
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(LoadError::Status(response.status().as_u16()));
    }
    Ok(response.bytes().await?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_classified() {
        assert!(matches!(
            KeySource::from_location("file:///etc/jwks.json").unwrap(),
            KeySource::File(path) if path == std::path::Path::new("/etc/jwks.json")
        ));
        assert!(matches!(
            KeySource::from_location("https://idp/certs").unwrap(),
            KeySource::Url(_)
        ));
        assert!(KeySource::from_location("ftp://idp/certs").is_err());
        assert!(KeySource::discovery("/relative").is_err());
    }

    #[test]
    fn discovery_url_gets_the_well_known_suffix_once() {
        for given in [
            "https://idp/realms/r",
            "https://idp/realms/r/",
            "https://idp/realms/r/.well-known/openid-configuration",
        ] {
            assert_eq!(
                KeySource::discovery(given).unwrap().describe(),
                "https://idp/realms/r/.well-known/openid-configuration"
            );
        }
    }
}
