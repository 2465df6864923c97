//! Statically configured keys: one private key (optionally passphrase-protected, optionally
//! with a certificate) per user, parsed once at startup.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use ironcrest_config::StaticKey;
use ironcrest_remote::Caller;
use russh::keys::{Certificate, decode_secret_key};

use super::{CredentialProvider, Credentials};
use crate::{CredentialsSetupError, SshError};

/// The configured credentials per username.
pub struct StaticKeys {
    keys: HashMap<String, Credentials>,
}

impl StaticKeys {
    pub fn from_config(keys: &BTreeMap<String, StaticKey>) -> Result<Self, CredentialsSetupError> {
        let mut parsed = HashMap::with_capacity(keys.len());
        for (user, entry) in keys {
            let invalid = |detail: String| CredentialsSetupError::StaticKey {
                user: user.clone(),
                detail,
            };
            let passphrase = entry.passphrase.as_ref().map(|p| p.expose());
            let key = decode_secret_key(entry.private_key.expose(), passphrase)
                .map_err(|err| invalid(format!("cannot read private_key: {err}")))?;
            let certificate = match &entry.public_cert {
                None => None,
                Some(text) => {
                    let cert = Certificate::from_openssh(text.trim())
                        .map_err(|err| invalid(format!("cannot read public_cert: {err}")))?;
                    if cert.public_key() != key.public_key().key_data() {
                        return Err(invalid(
                            "public_cert does not certify this private_key".into(),
                        ));
                    }
                    Some(cert)
                }
            };
            parsed.insert(
                user.clone(),
                Credentials {
                    key: Arc::new(key),
                    certificate,
                },
            );
        }
        Ok(Self { keys: parsed })
    }
}

#[async_trait]
impl CredentialProvider for StaticKeys {
    async fn credentials(&self, user: &Caller) -> Result<Credentials, SshError> {
        self.keys.get(&user.username).cloned().ok_or_else(|| {
            SshError::Credentials(format!("no SSH key configured for user {}", user.username))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironcrest_config::Secret;
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::{Algorithm, LineEnding};
    use secrecy::SecretString;

    fn user(name: &str) -> Caller {
        Caller {
            username: name.into(),
            access_token: SecretString::from("unused"),
            request_ids: None,
            idempotency: None,
        }
    }

    fn random_key() -> PrivateKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
    }

    fn cert_for(key: &PrivateKey) -> String {
        let ca = random_key();
        let mut builder = Builder::new_with_random_nonce(
            &mut rand::rng(),
            key.public_key().key_data().clone(),
            0,
            u64::MAX,
        )
        .unwrap();
        builder.valid_principal("alice").unwrap();
        builder.sign(&ca).unwrap().to_openssh().unwrap()
    }

    #[tokio::test]
    async fn keys_with_passphrase_and_certificate_are_loaded() {
        let plain = random_key();
        let protected = random_key();
        let encrypted = protected
            .encrypt(&mut rand::rng(), "s3cret")
            .unwrap()
            .to_openssh(LineEnding::LF)
            .unwrap()
            .to_string();
        let mut config = BTreeMap::new();
        config.insert(
            "alice".to_string(),
            StaticKey {
                private_key: Secret::new(plain.to_openssh(LineEnding::LF).unwrap().to_string()),
                public_cert: Some(cert_for(&plain)),
                passphrase: None,
            },
        );
        config.insert(
            "bob".to_string(),
            StaticKey {
                private_key: Secret::new(encrypted.clone()),
                public_cert: None,
                passphrase: Some(Secret::new("s3cret")),
            },
        );
        let keys = StaticKeys::from_config(&config).unwrap();
        let alice = keys.credentials(&user("alice")).await.unwrap();
        assert_eq!(alice.key.public_key(), plain.public_key());
        assert!(alice.certificate.is_some());
        let bob = keys.credentials(&user("bob")).await.unwrap();
        assert_eq!(bob.key.public_key(), protected.public_key());
        assert!(bob.certificate.is_none());
        let unknown = keys.credentials(&user("mallory")).await.unwrap_err();
        assert!(matches!(unknown, SshError::Credentials(_)), "{unknown:?}");
        assert!(unknown.to_string().contains("mallory"));

        // Wrong passphrase and a certificate for another key are startup errors.
        config.get_mut("bob").unwrap().passphrase = Some(Secret::new("wrong"));
        assert!(StaticKeys::from_config(&config).is_err());
        config.get_mut("bob").unwrap().passphrase = Some(Secret::new("s3cret"));
        config.get_mut("alice").unwrap().public_cert = Some(cert_for(&random_key()));
        let err = StaticKeys::from_config(&config).err().unwrap();
        assert!(err.to_string().contains("alice"), "{err}");
    }
}
