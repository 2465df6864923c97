//! Route families: the unit authorization, limits and audit are decided per.

/// What a route does, as policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteFamily {
    /// `GET /status/{system_name}/…`
    StatusRead,
    /// `GET /compute/{system_name}/jobs…`, and `GET /tasks/{system_name}…` (tasks are
    /// jobs, which the job listing shows too).
    ComputeRead,
    /// Submitting, cancelling and attaching to jobs, and cancelling tasks (which cancels
    /// their jobs).
    ComputeWrite,
    /// `GET /filesystem/{system_name}/ops/…` (download included).
    FilesystemRead,
    /// The other `/filesystem/{system_name}/ops/…` (upload included).
    FilesystemWrite,
    /// `/filesystem/{system_name}/transfer/…`: scheduler jobs and S3 staging.
    Transfer,
}

impl RouteFamily {
    pub const ALL: [RouteFamily; 6] = [
        Self::StatusRead,
        Self::ComputeRead,
        Self::ComputeWrite,
        Self::FilesystemRead,
        Self::FilesystemWrite,
        Self::Transfer,
    ];

    /// The family of a route, from its template and method; `None` for a route outside
    /// every family, which the API refuses rather than guess.
    pub fn of(method: &str, template: &str) -> Option<Self> {
        let read = method == "GET" || method == "HEAD";
        if template.starts_with("/status/{system_name}/") {
            read.then_some(Self::StatusRead)
        } else if template.starts_with("/compute/{system_name}/")
            || template.starts_with("/tasks/{system_name}")
        {
            Some(if read {
                Self::ComputeRead
            } else {
                Self::ComputeWrite
            })
        } else if template.starts_with("/filesystem/{system_name}/transfer/") {
            Some(Self::Transfer)
        } else if template.starts_with("/filesystem/{system_name}/ops/") {
            Some(if read {
                Self::FilesystemRead
            } else {
                Self::FilesystemWrite
            })
        } else {
            None
        }
    }

    /// The name logged as `route.family` and used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusRead => "status-read",
            Self::ComputeRead => "compute-read",
            Self::ComputeWrite => "compute-write",
            Self::FilesystemRead => "filesystem-read",
            Self::FilesystemWrite => "filesystem-write",
            Self::Transfer => "transfer",
        }
    }

    /// The family a configuration names (validation refuses other names).
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|family| family.as_str() == name)
    }

    /// Whether the family only reads.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Self::StatusRead | Self::ComputeRead | Self::FilesystemRead
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_follow_the_route_and_the_method() {
        let of = RouteFamily::of;
        assert_eq!(
            of("GET", "/status/{system_name}/userinfo"),
            Some(RouteFamily::StatusRead)
        );
        assert_eq!(of("POST", "/status/{system_name}/userinfo"), None);
        assert_eq!(
            of("GET", "/compute/{system_name}/jobs/{job_id}"),
            Some(RouteFamily::ComputeRead)
        );
        for method in ["POST", "PUT", "DELETE"] {
            assert_eq!(
                of(method, "/compute/{system_name}/jobs"),
                Some(RouteFamily::ComputeWrite)
            );
        }
        assert_eq!(
            of("HEAD", "/filesystem/{system_name}/ops/ls"),
            Some(RouteFamily::FilesystemRead)
        );
        assert_eq!(
            of("PUT", "/filesystem/{system_name}/ops/chmod"),
            Some(RouteFamily::FilesystemWrite)
        );
        assert_eq!(
            of("GET", "/filesystem/{system_name}/transfer/jobs"),
            Some(RouteFamily::Transfer)
        );
        assert_eq!(
            of("GET", "/tasks/{system_name}"),
            Some(RouteFamily::ComputeRead)
        );
        assert_eq!(
            of("DELETE", "/tasks/{system_name}/{task_id}"),
            Some(RouteFamily::ComputeWrite)
        );
        assert_eq!(of("GET", "/status/systems"), None);
    }

    #[test]
    fn configuration_names_are_the_logged_ones() {
        assert_eq!(
            RouteFamily::ALL.map(RouteFamily::as_str),
            ironcrest_config::ROUTE_FAMILIES
        );
        for family in RouteFamily::ALL {
            assert_eq!(RouteFamily::named(family.as_str()), Some(family));
        }
        assert_eq!(RouteFamily::named("filesystem"), None);
    }
}
