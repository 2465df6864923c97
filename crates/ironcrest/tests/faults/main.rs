//! Fault tests (docs/operations.md, "Failure modes"): a backend breaks under a steady mixed
//! load and comes back, and Ironcrest must answer quickly with a clear status meanwhile,
//! keep the routes that do not need it working, show the outage in its health checks, and
//! work again afterwards without a restart. Each test breaks a private copy of a dev
//! environment service that it starts itself ([`instances`]), so other tests are unaffected;
//! the outages of the shared slurmctld and slurmdbd are in the `faults_shared` target.

// Shared with the integration tests; not every helper is used here.
#[allow(dead_code)]
#[path = "../integration/harness.rs"]
mod harness;
mod instances;
mod load;
mod oidc;
mod s3;
mod shutdown;
mod slow_cluster;
mod slurmrestd;
mod sshd;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::harness::TestServer;

/// The newest health check of `service` on the server's (only) system, once one that
/// started after `since` is in `/status/systems`: the first probe run after a change.
pub async fn health_after(
    server: &TestServer,
    token: &str,
    service: &str,
    since: DateTime<Utc>,
) -> Value {
    for _ in 0..300 {
        let systems = server.get_json("/status/systems", token).await;
        let check = systems["systems"][0]["servicesHealth"]
            .as_array()
            .and_then(|checks| {
                checks
                    .iter()
                    .find(|check| check["serviceType"] == service)
                    .cloned()
            });
        if let Some(check) = check
            && let Some(checked) = check["lastChecked"].as_str()
            && DateTime::parse_from_rfc3339(checked).unwrap() > since
        {
            return check;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no {service} health check ran in the 60 s after {since}");
}

/// The messages of an SSH failure (FirecREST v2's 424s).
pub fn ssh_failure(answer: &load::Answer) -> bool {
    [
        "Unable to establish SSH connection.",
        "Unable to open a new SSH channel.",
        "SSH Protocol Error.",
    ]
    .iter()
    .any(|message| answer.is(424, message))
}

/// The 503 of a request gated on an unhealthy `service` of `system`.
pub fn unhealthy(answer: &load::Answer, service: &str, system: &str) -> bool {
    answer.is(
        503,
        &format!("The {service} service for the requested system ({system}) is unhealthy."),
    )
}
