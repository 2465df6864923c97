//! API keys (`X-API-Key`, pyfirecrest's `ApiKeyAuth`): long-lived credentials for a robot
//! or a CI pipeline, bound to a user, scopes, an expiry and optionally networks. The server
//! keeps only an HMAC-SHA256 of each key under a secret of its own, so a stolen keys file
//! gives nothing to log in with.
//!
//! A key reads `ick_<id>_<secret part>`: the id finds the entry, the HMAC of the whole key
//! must match its hash (compared in constant time).

use std::net::IpAddr;
use std::path::Path;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use ipnet::IpNet;
use ironcrest_config::{ApiKeyEntry, ApiKeysConfig, Problem, parse_network};
use sha2::Sha256;

const PREFIX: &str = "ick_";

/// Who an API key stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder {
    pub id: String,
    pub user: String,
    pub scopes: Vec<String>,
}

/// Why a key is refused; the client hears the same for all but expiry and address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("Invalid API key")]
    Unknown,
    #[error("The API key has expired")]
    Expired,
    #[error("The API key may not be used from {0}")]
    Address(IpAddr),
}

#[derive(Debug)]
struct Key {
    entry: ApiKeyEntry,
    hash: Vec<u8>,
    expires: DateTime<Utc>,
    networks: Vec<IpNet>,
}

/// The keys of the configured file.
#[derive(Debug)]
pub(crate) struct ApiKeys {
    secret: Vec<u8>,
    keys: Vec<Key>,
}

impl ApiKeys {
    /// Reads and checks the keys file; every problem, each naming the entry.
    pub(crate) fn load(config: &ApiKeysConfig) -> Result<Self, Vec<Problem>> {
        let file = config.file.display();
        let problem = |field: String, message: String| Problem { field, message };
        let text = match std::fs::read_to_string(&config.file) {
            Ok(text) => text,
            // No keys made yet.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => {
                let message = format!("cannot read {file}: {err}");
                return Err(vec![problem("gateway.api_keys.file".into(), message)]);
            }
        };
        let entries: Vec<ApiKeyEntry> = if text.trim().is_empty() {
            Vec::new()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|err| {
                vec![problem(
                    "gateway.api_keys.file".into(),
                    format!("{file}: {err}"),
                )]
            })?
        };
        let mut problems = Vec::new();
        let mut keys = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let at = format!("{file}[{i}]");
            let expires = DateTime::parse_from_rfc3339(&entry.expires);
            let hash = decode_hex(&entry.hash);
            let networks: Vec<Option<IpNet>> =
                entry.networks.iter().map(|n| parse_network(n)).collect();
            if expires.is_err() {
                problems.push(problem(
                    format!("{at}.expires"),
                    "not an RFC 3339 time".into(),
                ));
            }
            if hash.as_ref().is_none_or(|h| h.len() != 32) {
                problems.push(problem(format!("{at}.hash"), "not a hex SHA-256".into()));
            }
            if networks.iter().any(Option::is_none) {
                problems.push(problem(
                    format!("{at}.networks"),
                    "an entry is not an address or CIDR block".into(),
                ));
            }
            if let (Ok(expires), Some(hash)) = (expires, hash) {
                keys.push(Key {
                    expires: expires.with_timezone(&Utc),
                    hash,
                    networks: networks.into_iter().flatten().collect(),
                    entry,
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            secret: config.secret.expose().as_bytes().to_vec(),
            keys,
        })
    }

    /// The holder of `key`, if it is valid now from `address`.
    pub(crate) fn holder(
        &self,
        key: &str,
        address: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<KeyHolder, KeyRefusal> {
        let id = key
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .ok_or(KeyRefusal::Unknown)?;
        let found = self
            .keys
            .iter()
            .find(|k| k.entry.id == id)
            .ok_or(KeyRefusal::Unknown)?;
        mac(&self.secret, key)
            .verify_slice(&found.hash)
            .map_err(|_| KeyRefusal::Unknown)?;
        if found.expires <= now {
            return Err(KeyRefusal::Expired);
        }
        if !found.networks.is_empty() && !found.networks.iter().any(|n| n.contains(&address)) {
            return Err(KeyRefusal::Address(address));
        }
        Ok(KeyHolder {
            id: found.entry.id.clone(),
            user: found.entry.user.clone(),
            scopes: found.entry.scopes.clone(),
        })
    }
}

fn mac(secret: &[u8], key: &str) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(key.as_bytes());
    mac
}

/// A new key for `user` and its file entry (with only the key's hash).
pub fn create(
    config: &ApiKeysConfig,
    user: &str,
    scopes: Vec<String>,
    expires: DateTime<Utc>,
    networks: Vec<String>,
) -> (String, ApiKeyEntry) {
    let random =
        |bytes: usize| encode_hex(&(0..bytes).map(|_| rand::random::<u8>()).collect::<Vec<_>>());
    let id = random(6);
    let key = format!("{PREFIX}{id}_{}", random(24));
    let hash = encode_hex(
        &mac(config.secret.expose().as_bytes(), &key)
            .finalize()
            .into_bytes(),
    );
    let entry = ApiKeyEntry {
        id,
        user: user.to_string(),
        scopes,
        expires: expires.to_rfc3339(),
        networks,
        hash,
    };
    (key, entry)
}

/// Appends `entry` to the keys file (created readable by its owner only).
pub fn append(file: &Path, entry: &ApiKeyEntry) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let yaml = serde_yaml_ng::to_string(&vec![entry]).map_err(std::io::Error::other)?;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)?;
    out.write_all(yaml.as_bytes())
}

/// Removes the key `id` from the keys file; whether it was there.
pub fn revoke(file: &Path, id: &str) -> std::io::Result<bool> {
    let text = std::fs::read_to_string(file)?;
    let mut entries: Vec<ApiKeyEntry> = if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml_ng::from_str(&text).map_err(std::io::Error::other)?
    };
    let before = entries.len();
    entries.retain(|entry| entry.id != id);
    if entries.len() == before {
        return Ok(false);
    }
    let yaml = serde_yaml_ng::to_string(&entries).map_err(std::io::Error::other)?;
    std::fs::write(
        file,
        if entries.is_empty() {
            String::new()
        } else {
            yaml
        },
    )?;
    Ok(true)
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> ApiKeysConfig {
        ApiKeysConfig {
            file: dir.join("keys.yaml"),
            secret: ironcrest_config::Secret::new("0123456789abcdef0123456789abcdef"),
        }
    }

    #[test]
    fn a_created_key_is_accepted_until_it_expires_and_only_from_its_networks() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let now = Utc::now();
        let (key, entry) = create(
            &config,
            "fireuser",
            vec!["firecrest:read".into()],
            now + chrono::Duration::days(1),
            vec!["10.0.0.0/8".into()],
        );
        assert!(!serde_yaml_ng::to_string(&entry).unwrap().contains(&key));
        append(&config.file, &entry).unwrap();
        let (other, other_entry) = create(&config, "firesrv", vec![], now, vec![]);
        append(&config.file, &other_entry).unwrap();
        let keys = ApiKeys::load(&config).unwrap();
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let holder = keys.holder(&key, inside, now).unwrap();
        assert_eq!(holder.user, "fireuser");
        assert_eq!(holder.scopes, ["firecrest:read"]);
        assert_eq!(
            keys.holder(&key, "192.0.2.1".parse().unwrap(), now),
            Err(KeyRefusal::Address("192.0.2.1".parse().unwrap()))
        );
        assert_eq!(
            keys.holder(&key, inside, now + chrono::Duration::days(2)),
            Err(KeyRefusal::Expired)
        );
        assert_eq!(keys.holder(&other, inside, now), Err(KeyRefusal::Expired));
        // The right id with another secret part, or garbage: unknown.
        let (id_part, _) = key.rsplit_once('_').unwrap();
        let forged = format!("{id_part}_{}", "0".repeat(48));
        assert_eq!(keys.holder(&forged, inside, now), Err(KeyRefusal::Unknown));
        assert_eq!(
            keys.holder("nonsense", inside, now),
            Err(KeyRefusal::Unknown)
        );

        assert!(revoke(&config.file, &entry.id).unwrap());
        assert!(!revoke(&config.file, &entry.id).unwrap());
        let keys = ApiKeys::load(&config).unwrap();
        assert_eq!(keys.holder(&key, inside, now), Err(KeyRefusal::Unknown));
    }

    #[test]
    fn a_broken_keys_file_names_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        std::fs::write(
            &config.file,
            "- {id: a, user: u, expires: soon, hash: zz}\n",
        )
        .unwrap();
        let problems = ApiKeys::load(&config).unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert!(
            fields.iter().any(|f| f.ends_with("[0].expires")),
            "{fields:?}"
        );
        assert!(fields.iter().any(|f| f.ends_with("[0].hash")), "{fields:?}");
        // No file yet: no keys.
        std::fs::remove_file(&config.file).unwrap();
        assert!(ApiKeys::load(&config).is_ok());
    }
}
