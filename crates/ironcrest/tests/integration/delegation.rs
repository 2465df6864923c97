//! The login uses a certificate signed by Ironcrest's built-in CA: no key for the user
//! exists on disk, and sshd records the certificate.

use crate::harness::{SYSTEM, TestServer, env, user_token};

fn private_keys_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(private_keys_under(&path));
        } else if std::fs::read(&path)
            .is_ok_and(|bytes| bytes.windows(11).any(|w| w == b"PRIVATE KEY"))
        {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn logins_use_a_ca_signed_certificate_and_no_user_key_exists() {
    let server = TestServer::start().await;
    let token = user_token().await;
    let info = server
        .get_json(&format!("/status/{SYSTEM}/userinfo"), &token)
        .await;
    assert_eq!(info["user"]["name"], "fireuser");

    let log =
        std::fs::read_to_string(format!("{}/ssh/sshd.log", env("IRONCREST_DEV_PREFIX"))).unwrap();
    assert!(
        log.contains("Accepted certificate ID \"ironcrest:fireuser\""),
        "sshd never accepted an Ironcrest certificate for fireuser"
    );
    assert_eq!(
        private_keys_under(std::path::Path::new("/home/fireuser")),
        Vec::<std::path::PathBuf>::new()
    );
    let keys_in_prefix: Vec<_> =
        private_keys_under(std::path::Path::new(&env("IRONCREST_DEV_PREFIX")))
            .into_iter()
            .filter(|path| path.to_string_lossy().contains("fireuser"))
            .collect();
    assert!(keys_in_prefix.is_empty(), "{keys_in_prefix:?}");
}
