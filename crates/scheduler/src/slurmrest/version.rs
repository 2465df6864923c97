//! The slurmrestd API versions Ironcrest speaks, and the request shapes that differ between
//! them (wire reference §2.2): v0.0.38 is served live by the dev environment's 22.05;
//! v0.0.39–v0.0.42 are modelled from the reference.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiVersion {
    V0038,
    V0039,
    V0040,
    V0041,
    V0042,
}

impl ApiVersion {
    /// Parses `0.0.38` or `v0.0.38`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().trim_start_matches('v') {
            "0.0.38" => Some(Self::V0038),
            "0.0.39" => Some(Self::V0039),
            "0.0.40" => Some(Self::V0040),
            "0.0.41" => Some(Self::V0041),
            "0.0.42" => Some(Self::V0042),
            _ => None,
        }
    }

    /// The job's environment is a `["K=V"]` list from v0.0.39 on, an object before.
    pub fn environment_as_list(self) -> bool {
        self >= Self::V0039
    }

    /// The batch script moves from the top level into `job` in v0.0.41.
    pub fn script_inside_job(self) -> bool {
        self >= Self::V0041
    }

    /// `/slurmdb/jobs` takes a `users` filter from v0.0.40 on (v0.0.38 refuses unknown
    /// query fields with 500).
    pub fn accounting_user_filter(self) -> bool {
        self >= Self::V0040
    }

    /// `/slurmdb/jobs?start_time=` takes epoch seconds from v0.0.40 on; before, only
    /// relative times like `now-24hours` work (an epoch gives 500 in 22.05).
    pub fn epoch_start_time(self) -> bool {
        self >= Self::V0040
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let minor = match self {
            Self::V0038 => 38,
            Self::V0039 => 39,
            Self::V0040 => 40,
            Self::V0041 => 41,
            Self::V0042 => 42,
        };
        write!(f, "v0.0.{minor}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_or_without_v() {
        assert_eq!(ApiVersion::parse("0.0.38"), Some(ApiVersion::V0038));
        assert_eq!(ApiVersion::parse("v0.0.41"), Some(ApiVersion::V0041));
        assert_eq!(ApiVersion::parse("0.0.37"), None);
        assert_eq!(ApiVersion::V0040.to_string(), "v0.0.40");
    }

    #[test]
    fn request_shapes_follow_the_version() {
        assert!(!ApiVersion::V0038.environment_as_list());
        assert!(ApiVersion::V0039.environment_as_list());
        assert!(!ApiVersion::V0040.script_inside_job());
        assert!(ApiVersion::V0041.script_inside_job());
        assert!(!ApiVersion::V0039.epoch_start_time());
        assert!(ApiVersion::V0040.epoch_start_time());
        assert!(!ApiVersion::V0038.accounting_user_filter());
    }
}
