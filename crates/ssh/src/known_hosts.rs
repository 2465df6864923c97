//! Host key verification against an OpenSSH `known_hosts` file.
//!
//! Not `russh::keys::check_known_hosts_path`: it returns `Ok(false)` for a missing file or
//! entry (easy to mistake for "fine"), stops at the first same-algorithm entry that differs
//! (so a host listed with an old and a new key fails), splits only on single spaces and
//! ignores `@revoked`. Here the file is parsed with `ssh_key::known_hosts` and OpenSSH's
//! rules are followed: plain, wildcard (`*`, `?`), negated (`!`) and hashed (`|1|`) host
//! patterns, `[host]:port` for non-22 ports, `@revoked` wins, `@cert-authority` lines are
//! not host keys.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::PublicKey;
use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, KnownHosts, Marker};
use sha1::Sha1;

/// Accepts `key` for `host:port` if `known_hosts` lists it; the error says why not.
pub(crate) async fn verify(
    known_hosts: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<(), String> {
    let text = tokio::fs::read_to_string(known_hosts)
        .await
        .map_err(|err| format!("cannot read {}: {err}", known_hosts.display()))?;
    verify_text(&text, host, port, key)
}

pub(crate) fn verify_text(
    text: &str,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<(), String> {
    let name = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    let mut known_for_host = 0usize;
    let mut matched = false;
    for entry in KnownHosts::new(text).filter_map(Result::ok) {
        if !host_matches(&entry, &name) {
            continue;
        }
        let same_key = entry.public_key().key_data() == key.key_data();
        match entry.marker() {
            Some(Marker::Revoked) if same_key => {
                return Err(format!("host key for {name} is marked @revoked"));
            }
            Some(_) => {}
            None => {
                known_for_host += 1;
                matched |= same_key;
            }
        }
    }
    match (matched, known_for_host) {
        (true, _) => Ok(()),
        (false, 0) => Err(format!(
            "no known_hosts entry for {name} ({} key offered)",
            key.algorithm()
        )),
        (false, n) => Err(format!(
            "host key for {name} ({}) matches none of the {n} recorded key(s): possible man-in-the-middle",
            key.algorithm()
        )),
    }
}

fn host_matches(entry: &Entry, name: &str) -> bool {
    match entry.host_patterns() {
        HostPatterns::Patterns(patterns) => {
            let mut positive = false;
            for pattern in patterns {
                if let Some(negated) = pattern.strip_prefix('!') {
                    if glob(negated.as_bytes(), name.as_bytes()) {
                        return false;
                    }
                } else if glob(pattern.as_bytes(), name.as_bytes()) {
                    positive = true;
                }
            }
            positive
        }
        HostPatterns::HashedName { salt, hash } => {
            let Ok(mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(salt) else {
                return false;
            };
            mac.chain_update(name.as_bytes()).verify_slice(hash).is_ok()
        }
    }
}

/// OpenSSH `match_pattern`: `*` is any run, `?` any one character; case-insensitive
/// because host names are.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == b'?' || c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::{Algorithm, PrivateKey};

    fn key() -> PublicKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .clone()
    }

    fn line(host: &str, key: &PublicKey) -> String {
        format!("{host} {}\n", key.to_openssh().unwrap())
    }

    #[test]
    fn plain_entry_with_port_is_accepted_and_other_ports_are_not() {
        let k = key();
        let text = line("[127.0.0.1]:2222", &k);
        assert!(verify_text(&text, "127.0.0.1", 2222, &k).is_ok());
        assert!(verify_text(&text, "127.0.0.1", 22, &k).is_err());
        assert!(verify_text(&text, "127.0.0.1", 2223, &k).is_err());
        let default_port = line("cluster.example,10.0.0.1", &k);
        assert!(verify_text(&default_port, "10.0.0.1", 22, &k).is_ok());
        assert!(verify_text(&default_port, "CLUSTER.example", 22, &k).is_ok());
    }

    #[test]
    fn missing_and_mismatching_keys_are_refused_with_reasons() {
        let (k, other) = (key(), key());
        let err = verify_text("", "h", 22, &k).unwrap_err();
        assert!(err.contains("no known_hosts entry"), "{err}");
        let err = verify_text(&line("h", &other), "h", 22, &k).unwrap_err();
        assert!(err.contains("matches none"), "{err}");
    }

    #[test]
    fn a_rotated_host_with_two_keys_accepts_either() {
        let (old, new) = (key(), key());
        let text = line("h", &old) + &line("h", &new);
        assert!(verify_text(&text, "h", 22, &new).is_ok());
        assert!(verify_text(&text, "h", 22, &old).is_ok());
    }

    #[test]
    fn wildcards_negation_markers_and_comments() {
        let k = key();
        let text = format!("# comment\n\n{}", line("*.example,!bad.example", &k));
        assert!(verify_text(&text, "node1.example", 22, &k).is_ok());
        assert!(verify_text(&text, "bad.example", 22, &k).is_err());
        let revoked = line("h", &k) + "@revoked " + &line("h", &k);
        assert!(verify_text(&revoked, "h", 22, &k).is_err());
        let ca_only = "@cert-authority ".to_string() + &line("h", &k);
        assert!(verify_text(&ca_only, "h", 22, &k).is_err());
    }

    #[test]
    fn hashed_entries_match() {
        // `ssh-keygen -H` form: |1|base64(salt)|base64(hmac_sha1(salt, "[h]:2222")).
        let k = key();
        let salt = [7u8; 20];
        let mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt)
            .unwrap()
            .chain_update(b"[h]:2222")
            .finalize()
            .into_bytes();
        let b64 = |bytes: &[u8]| {
            use russh::keys::ssh_encoding::base64::{Base64, Encoding};
            Base64::encode_string(bytes)
        };
        let text = line(&format!("|1|{}|{}", b64(&salt), b64(&mac)), &k);
        assert!(verify_text(&text, "h", 2222, &k).is_ok());
        assert!(verify_text(&text, "h", 22, &k).is_err());
    }

    #[test]
    fn glob_semantics() {
        assert!(glob(b"*", b"anything"));
        assert!(glob(b"a*c", b"abbbc"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"ac"));
        assert!(glob(b"[10.0.0.*]:22*", b"[10.0.0.7]:2222"));
        assert!(!glob(b"abc", b"abcd"));
    }
}
