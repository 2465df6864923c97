//! Secret values: given literally, or read from a file (`secret_file:/path`) or an
//! environment variable (`secret_env:NAME`) when the configuration is loaded.
//! A secret never appears in `Debug` output, logs or API responses.
//!
//! Serialised, a secret is written as it was given: a `secret_file:`/`secret_env:`
//! reference as that reference (never what the file or variable held). A literal value is
//! written only with the `test-support` feature, for tests that edit a configuration and
//! write it out; without it, serialising one is an error, so no configuration dump can
//! carry a secret.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const FILE_PREFIX: &str = "secret_file:";
const ENV_PREFIX: &str = "secret_env:";

#[derive(Clone)]
pub struct Secret {
    value: SecretString,
    /// The `secret_file:`/`secret_env:` reference the value was read from (which is not
    /// secret); `None` for a value given literally.
    reference: Option<String>,
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            value: SecretString::from(value.into()),
            reference: None,
        }
    }

    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Resolves `secret_file:` and `secret_env:` references; anything else is the value itself.
    pub fn resolve(raw: &str) -> Result<Self, String> {
        let value = if let Some(path) = raw.strip_prefix(FILE_PREFIX) {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read secret file {path}: {err}"))?;
            text.trim().to_string()
        } else if let Some(name) = raw.strip_prefix(ENV_PREFIX) {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?
        } else {
            return Ok(Self::new(raw));
        };
        Ok(Self {
            reference: Some(raw.to_string()),
            ..Self::new(value)
        })
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

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.reference {
            Some(reference) => serializer.serialize_str(reference),
            None => serialize_literal(self, serializer),
        }
    }
}

#[cfg(feature = "test-support")]
fn serialize_literal<S: Serializer>(secret: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose())
}

#[cfg(not(feature = "test-support"))]
fn serialize_literal<S: Serializer>(_: &Secret, _: S) -> Result<S::Ok, S::Error> {
    Err(serde::ser::Error::custom(
        "a secret given literally is not written out (give it as secret_file: or secret_env:)",
    ))
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
    fn references_serialise_as_themselves_never_as_their_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "hunter2\n").unwrap();
        let reference = format!("secret_file:{}", path.display());
        let secret = Secret::resolve(&reference).unwrap();
        assert_eq!(serde_yaml_ng::to_string(&secret).unwrap().trim(), reference);
        let back: Secret = serde_yaml_ng::from_str(&reference).unwrap();
        assert_eq!(back.expose(), "hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(**********)");
    }

    #[cfg(feature = "test-support")]
    #[test]
    fn with_test_support_a_literal_serialises_as_its_value() {
        let yaml = serde_yaml_ng::to_string(&Secret::new("plain")).unwrap();
        let back: Secret = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(back.expose(), "plain");
    }

    #[cfg(not(feature = "test-support"))]
    #[test]
    fn without_test_support_a_literal_is_never_serialised() {
        let err = serde_yaml_ng::to_string(&Secret::new("hunter2")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
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
