//! Secret values: given literally, or read from a file (`secret_file:/path`) or an
//! environment variable (`secret_env:NAME`) when the configuration is loaded.
//! A secret never appears in `Debug` output, logs or API responses.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

const FILE_PREFIX: &str = "secret_file:";
const ENV_PREFIX: &str = "secret_env:";

#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Resolves `secret_file:` and `secret_env:` references; anything else is the value itself.
    pub fn resolve(raw: &str) -> Result<Self, String> {
        if let Some(path) = raw.strip_prefix(FILE_PREFIX) {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read secret file {path}: {err}"))?;
            Ok(Self::new(text.trim()))
        } else if let Some(name) = raw.strip_prefix(ENV_PREFIX) {
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?;
            Ok(Self::new(value))
        } else {
            Ok(Self::new(raw))
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(**********)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::resolve(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_file_and_env_secrets_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "from-file\n").unwrap();
        assert_eq!(Secret::resolve("plain").unwrap().expose(), "plain");
        let from_file = Secret::resolve(&format!("secret_file:{}", path.display())).unwrap();
        assert_eq!(from_file.expose(), "from-file");
        // SAFETY: single-threaded test setting a variable no other test reads.
        unsafe { std::env::set_var("IRONCREST_TEST_SECRET", "from-env") };
        let from_env = Secret::resolve("secret_env:IRONCREST_TEST_SECRET").unwrap();
        assert_eq!(from_env.expose(), "from-env");
    }

    #[test]
    fn missing_sources_are_errors_and_debug_hides_the_value() {
        assert!(Secret::resolve("secret_file:/nonexistent/x").is_err());
        assert!(Secret::resolve("secret_env:IRONCREST_SURELY_UNSET_VAR").is_err());
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret(**********)"
        );
    }
}
