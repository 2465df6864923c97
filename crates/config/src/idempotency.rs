//! `idempotency`: how long an `Idempotency-Key` holds (docs/retries.md).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// Seconds a key is remembered after its request: a retry within it answers the first
    /// response; after it the key starts new work. The scheduler is asked for the user's
    /// jobs back this far, so a longer window makes that query larger.
    #[serde(default = "default_window")]
    pub window: u64,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            window: default_window(),
        }
    }
}

/// 24 hours, the IETF draft's example and what clients retrying a submit need.
fn default_window() -> u64 {
    24 * 3600
}
