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

    /// The family of a FirecREST v1 route, from its template under the v1 prefix
    /// (`/utilities/ls`) and method, so v1 and v2 requests meet the same policy: utilities
    /// are filesystem reads or writes, `/compute` reads and writes jobs, `/storage` is
    /// transfer, and `/reservations` reads status or (creating, changing, deleting) writes
    /// to the scheduler like a job. `/status` and `/tasks` are on no system by path (a task
    /// is admitted in the family of what it does), so `None`.
    pub fn of_v1(method: &str, template: &str) -> Option<Self> {
        let read = method == "GET" || method == "HEAD";
        let service = template.trim_start_matches('/').split('/').next()?;
        match service {
            "utilities" if read => Some(Self::FilesystemRead),
            "utilities" => Some(Self::FilesystemWrite),
            "compute" if read => Some(Self::ComputeRead),
            "compute" => Some(Self::ComputeWrite),
            "storage" => Some(Self::Transfer),
            "reservations" if read => Some(Self::StatusRead),
            "reservations" => Some(Self::ComputeWrite),
            _ => None,
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
    fn v1_routes_fall_in_the_families_of_what_they_do() {
        let of = RouteFamily::of_v1;
        assert_eq!(
            of("GET", "/utilities/ls"),
            Some(RouteFamily::FilesystemRead)
        );
        assert_eq!(
            of("GET", "/utilities/download"),
            Some(RouteFamily::FilesystemRead)
        );
        assert_eq!(
            of("POST", "/utilities/upload"),
            Some(RouteFamily::FilesystemWrite)
        );
        assert_eq!(
            of("DELETE", "/utilities/rm"),
            Some(RouteFamily::FilesystemWrite)
        );
        assert_eq!(of("GET", "/compute/acct"), Some(RouteFamily::ComputeRead));
        assert_eq!(
            of("DELETE", "/compute/jobs/{jobid}"),
            Some(RouteFamily::ComputeWrite)
        );
        assert_eq!(
            of("POST", "/storage/xfer-internal/mv"),
            Some(RouteFamily::Transfer)
        );
        assert_eq!(of("GET", "/reservations"), Some(RouteFamily::StatusRead));
        assert_eq!(
            of("PUT", "/reservations/{reservation}"),
            Some(RouteFamily::ComputeWrite)
        );
        assert_eq!(of("GET", "/status/systems"), None);
        assert_eq!(of("GET", "/tasks/{taskid}"), None);
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
