//! `v1`: the FirecREST v1 API served beside v2 under a path prefix (docs/v1.md).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct V1Config {
    /// Serve v1 at all (on by default, so v1 clients keep working while they migrate).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Where v1 is mounted: v1 and v2 share paths with different shapes (`/status/systems`,
    /// `/compute/jobs…`, `/tasks…`), so v1 clients take `<url><prefix>` as their base URL.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

impl Default for V1Config {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            prefix: default_prefix(),
        }
    }
}

fn default_enabled() -> bool {
    true
}

fn default_prefix() -> String {
    "/v1".into()
}

/// The first path segments v2 and Ironcrest's own routes use; a v1 prefix may not be one.
const TAKEN: &[&str] = &[
    "status",
    "compute",
    "filesystem",
    "tasks",
    "admin",
    "docs",
    "redoc",
    "openapi.json",
    "metrics",
    "api-docs",
    "ui",
];

impl V1Config {
    /// Every problem, as (field, message) pairs.
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !self.enabled {
            return problems;
        }
        let prefix = &self.prefix;
        let segments: Vec<&str> = prefix.strip_prefix('/').unwrap_or("").split('/').collect();
        let valid = prefix.starts_with('/')
            && segments.iter().all(|segment| {
                !segment.is_empty()
                    && segment.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)
                    })
            });
        if !valid {
            problems.push((
                "prefix",
                format!(
                    "{prefix:?} must be a path of lower-case segments (letters, digits, '-', '_', '.'), starting with '/' and not ending with one, e.g. \"/v1\""
                ),
            ));
        } else if TAKEN.contains(&segments[0]) {
            problems.push((
                "prefix",
                format!(
                    "{prefix:?} would hide the v2 routes under /{}: choose another first segment",
                    segments[0]
                ),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(prefix: &str) -> usize {
        V1Config {
            enabled: true,
            prefix: prefix.into(),
        }
        .problems()
        .len()
    }

    #[test]
    fn prefixes_are_lower_case_paths_that_hide_no_v2_route() {
        assert_eq!(problems("/v1"), 0);
        assert_eq!(problems("/api/firecrest-v1"), 0);
        for bad in [
            "",
            "/",
            "v1",
            "/v1/",
            "/V1",
            "/a//b",
            "/a b",
            "/status",
            "/tasks/v1",
        ] {
            assert_eq!(problems(bad), 1, "{bad:?}");
        }
        let off = V1Config {
            enabled: false,
            prefix: "/status".into(),
        };
        assert!(off.problems().is_empty());
    }
}
