//! Ironcrest as the SSH user CA: per user, an ephemeral Ed25519 key and a short-lived
//! certificate signed by the configured CA key. Nothing is written to disk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ironcrest_config::CertificateRestrictions;
use ironcrest_remote::Caller;
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::{Algorithm, PublicKey};
use russh::keys::{PrivateKey, decode_secret_key};

use super::{Clock, CredentialProvider, Credentials, system_clock};
use crate::{CredentialsSetupError, SshError};

/// Backdating absorbs clock skew between this host and the cluster's sshd.
const BACKDATE_SECS: u64 = 60;

/// Signs a fresh certificate for a user when theirs has less than a third of its life left.
pub struct CertificateAuthority {
    ca_key: PrivateKey,
    lifetime: u64,
    restrictions: CertificateRestrictions,
    clock: Clock,
    issued: Mutex<HashMap<String, Credentials>>,
}

impl CertificateAuthority {
    /// `ca_private_key` is the CA's OpenSSH private key text (unencrypted); `lifetime` is
    /// the certificate validity in seconds.
    pub fn from_openssh(
        ca_private_key: &str,
        lifetime: u64,
    ) -> Result<Self, CredentialsSetupError> {
        let ca_key = decode_secret_key(ca_private_key, None)
            .map_err(|err| CredentialsSetupError::CaKey(format!("cannot parse: {err}")))?;
        if lifetime == 0 {
            return Err(CredentialsSetupError::CaKey(
                "certificate_lifetime must be greater than 0".into(),
            ));
        }
        Ok(Self {
            ca_key,
            lifetime,
            restrictions: CertificateRestrictions::default(),
            clock: system_clock(),
            issued: Mutex::new(HashMap::new()),
        })
    }

    /// Certificates that run only `force_command` (the cluster-side guard) and are accepted
    /// only from `source_addresses`: critical options sshd enforces, so a stolen
    /// certificate can do no more than Ironcrest would.
    pub fn restricted(mut self, restrictions: CertificateRestrictions) -> Self {
        self.restrictions = restrictions;
        self
    }

    /// Replaces the wall clock (seconds since the epoch), for tests.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The public key sshd must trust (`TrustedUserCAKeys`).
    pub fn public_key(&self) -> &PublicKey {
        self.ca_key.public_key()
    }

    /// A new key pair and certificate for `username`, valid from `now - 60 s` to
    /// `now + lifetime`.
    pub fn issue(&self, username: &str, now: u64) -> Result<Credentials, SshError> {
        let signing_failed = |err: russh::keys::ssh_key::Error| {
            SshError::Credentials(format!("cannot sign a certificate for {username}: {err}"))
        };
        let mut rng = rand::rng();
        let key = PrivateKey::random(&mut rng, Algorithm::Ed25519).map_err(signing_failed)?;
        let mut builder = Builder::new_with_random_nonce(
            &mut rng,
            key.public_key().key_data().clone(),
            now.saturating_sub(BACKDATE_SECS),
            now.saturating_add(self.lifetime),
        )
        .map_err(signing_failed)?;
        builder
            .serial(rand::random())
            .and_then(|b| b.cert_type(CertType::User))
            .and_then(|b| b.key_id(format!("ironcrest:{username}")))
            .and_then(|b| b.valid_principal(username))
            // Only what an interactive-free exec session may need: no agent, X11 or
            // port forwarding.
            .and_then(|b| b.extension("permit-pty", ""))
            .and_then(|b| b.extension("permit-user-rc", ""))
            .map_err(signing_failed)?;
        if let Some(command) = &self.restrictions.force_command {
            builder
                .critical_option("force-command", command)
                .map_err(signing_failed)?;
        }
        if !self.restrictions.source_addresses.is_empty() {
            builder
                .critical_option(
                    "source-address",
                    self.restrictions.source_addresses.join(","),
                )
                .map_err(signing_failed)?;
        }
        let certificate = builder.sign(&self.ca_key).map_err(signing_failed)?;
        Ok(Credentials {
            key: Arc::new(key),
            certificate: Some(certificate),
        })
    }

    /// Whether a certificate expiring at `valid_before` is still good enough to log in with.
    fn fresh(&self, valid_before: u64, now: u64) -> bool {
        valid_before.saturating_sub(now) >= self.lifetime.div_ceil(3)
    }
}

#[async_trait]
impl CredentialProvider for CertificateAuthority {
    fn forced_command(&self) -> Option<&str> {
        self.restrictions.force_command.as_deref()
    }

    async fn credentials(&self, user: &Caller) -> Result<Credentials, SshError> {
        let now = (self.clock)();
        let mut issued = self
            .issued
            .lock()
            .map_err(|_| SshError::Credentials("certificate cache poisoned".into()))?;
        if let Some(current) = issued.get(&user.username)
            && let Some(cert) = &current.certificate
            && cert.valid_after() <= now
            && self.fresh(cert.valid_before(), now)
        {
            return Ok(current.clone());
        }
        let fresh = self.issue(&user.username, now)?;
        tracing::debug!(ssh.user = %user.username, "issued SSH user certificate");
        issued.insert(user.username.clone(), fresh.clone());
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::HashAlg;
    use secrecy::SecretString;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn ca_text() -> String {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap()
            .to_openssh(Default::default())
            .unwrap()
            .to_string()
    }

    fn user(name: &str) -> Caller {
        Caller {
            username: name.into(),
            access_token: SecretString::from("unused"),
            request_ids: None,
            idempotency: None,
        }
    }

    #[test]
    fn certificate_validates_against_the_ca_with_the_expected_fields() {
        let ca = CertificateAuthority::from_openssh(&ca_text(), 600).unwrap();
        let now = 1_700_000_000;
        let creds = ca.issue("alice", now).unwrap();
        let cert = creds.certificate.unwrap();
        let ca_fp = ca.public_key().fingerprint(HashAlg::Sha256);
        // What `sshd` checks: signature by a trusted CA and the validity window.
        cert.validate_at(now, [&ca_fp]).unwrap();
        cert.validate_at(now - 59, [&ca_fp]).unwrap();
        cert.validate_at(now + 599, [&ca_fp]).unwrap();
        assert!(cert.validate_at(now + 601, [&ca_fp]).is_err());
        assert!(cert.validate_at(now - 61, [&ca_fp]).is_err());
        let other_ca = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        assert!(
            cert.validate_at(now, [&other_ca.public_key().fingerprint(HashAlg::Sha256)])
                .is_err()
        );

        assert_eq!(cert.cert_type(), CertType::User);
        assert_eq!(cert.key_id(), "ironcrest:alice");
        assert_eq!(cert.valid_principals(), ["alice".to_string()]);
        assert_eq!(cert.valid_after(), now - 60);
        assert_eq!(cert.valid_before(), now + 600);
        assert_eq!(cert.public_key(), creds.key.public_key().key_data());
        let extensions: Vec<&str> = cert.extensions().keys().map(String::as_str).collect();
        assert_eq!(extensions, ["permit-pty", "permit-user-rc"]);
        assert!(cert.critical_options().is_empty());
        // Round-trips through the text form `ssh-keygen -L -f` reads.
        let text = cert.to_openssh().unwrap();
        assert!(text.starts_with("ssh-ed25519-cert-v01@openssh.com "));
        assert_eq!(russh::keys::Certificate::from_openssh(&text).unwrap(), cert);
    }

    #[test]
    fn ssh_keygen_reads_the_certificate() {
        let ca = CertificateAuthority::from_openssh(&ca_text(), 600).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let cert = ca.issue("alice", now).unwrap().certificate.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id-cert.pub");
        std::fs::write(&path, cert.to_openssh().unwrap()).unwrap();
        let out = match std::process::Command::new("ssh-keygen")
            .arg("-L")
            .arg("-f")
            .arg(&path)
            .output()
        {
            Ok(out) => out,
            Err(err) => {
                eprintln!("skipping: ssh-keygen not runnable: {err}");
                return;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("user certificate"), "{text}");
        assert!(text.contains("Key ID: \"ironcrest:alice\""), "{text}");
        assert!(text.contains("permit-pty"), "{text}");
        assert!(!text.contains("permit-agent-forwarding"), "{text}");
    }

    #[test]
    fn restricted_certificates_force_the_guard_and_name_the_sources() {
        let ca = CertificateAuthority::from_openssh(&ca_text(), 600)
            .unwrap()
            .restricted(CertificateRestrictions {
                force_command: Some("/usr/local/bin/ironcrest-guard --log-file /x".into()),
                source_addresses: vec!["10.0.0.5".into(), "192.168.0.0/24".into()],
            });
        assert_eq!(
            ca.forced_command(),
            Some("/usr/local/bin/ironcrest-guard --log-file /x")
        );
        let cert = ca
            .issue("alice", 1_700_000_000)
            .unwrap()
            .certificate
            .unwrap();
        let options = cert.critical_options();
        assert_eq!(
            options.get("force-command").map(String::as_str),
            Some("/usr/local/bin/ironcrest-guard --log-file /x")
        );
        assert_eq!(
            options.get("source-address").map(String::as_str),
            Some("10.0.0.5,192.168.0.0/24")
        );
    }

    #[test]
    fn serials_and_keys_differ_between_certificates() {
        let ca = CertificateAuthority::from_openssh(&ca_text(), 600).unwrap();
        let a = ca.issue("alice", 1_700_000_000).unwrap();
        let b = ca.issue("alice", 1_700_000_000).unwrap();
        assert_ne!(a.key.public_key(), b.key.public_key());
        assert_ne!(
            a.certificate.unwrap().serial(),
            b.certificate.unwrap().serial()
        );
    }

    #[tokio::test]
    async fn credentials_are_reused_until_a_third_of_the_lifetime_is_left() {
        let now = Arc::new(AtomicU64::new(1_700_000_000));
        let clock_now = now.clone();
        let ca = CertificateAuthority::from_openssh(&ca_text(), 300)
            .unwrap()
            .with_clock(Arc::new(move || clock_now.load(Ordering::SeqCst)));
        let first = ca.credentials(&user("alice")).await.unwrap();
        let serial = |c: &Credentials| c.certificate.as_ref().unwrap().serial();

        now.fetch_add(199, Ordering::SeqCst); // 101 s left: still more than 300/3
        let same = ca.credentials(&user("alice")).await.unwrap();
        assert_eq!(serial(&same), serial(&first));
        assert!(Arc::ptr_eq(&same.key, &first.key));

        let other_user = ca.credentials(&user("bob")).await.unwrap();
        assert_ne!(other_user.key.public_key(), first.key.public_key());
        assert_eq!(
            other_user.certificate.as_ref().unwrap().valid_principals(),
            ["bob".to_string()]
        );

        now.fetch_add(2, Ordering::SeqCst); // 99 s left: renew
        let renewed = ca.credentials(&user("alice")).await.unwrap();
        assert_ne!(serial(&renewed), serial(&first));
        assert_ne!(renewed.key.public_key(), first.key.public_key());
        assert_eq!(
            renewed.certificate.as_ref().unwrap().valid_before(),
            1_700_000_000 + 201 + 300
        );
    }

    #[test]
    fn bad_ca_keys_are_setup_errors() {
        assert!(CertificateAuthority::from_openssh("not a key", 600).is_err());
        assert!(CertificateAuthority::from_openssh(&ca_text(), 0).is_err());
    }

    #[test]
    fn debug_output_hides_the_key() {
        let ca = CertificateAuthority::from_openssh(&ca_text(), 600).unwrap();
        let creds = ca.issue("alice", 1_700_000_000).unwrap();
        let shown = format!("{creds:?}");
        assert!(shown.contains("ironcrest:alice"), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }
}
