//! Requests not served at all: a system (or every system) under maintenance, and the
//! operator's termination rules.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ironcrest_config::{MaintenanceConfig, MaintenanceWindow, TerminationRule};

use crate::Denial;

/// The maintenance windows in force: the configured ones. Names are case-insensitive,
/// as system names are.
#[derive(Debug, Default)]
pub(crate) struct Maintenance {
    global: Option<MaintenanceWindow>,
    systems: BTreeMap<String, MaintenanceWindow>,
}

impl Maintenance {
    pub(crate) fn new(config: &MaintenanceConfig) -> Self {
        Self {
            global: config.global.clone(),
            systems: config
                .systems
                .iter()
                .map(|(name, window)| (name.to_lowercase(), window.clone()))
                .collect(),
        }
    }

    /// The window `system` is in, if any (the global one first), the admin's `overrides`
    /// taking precedence over the configuration.
    pub(crate) fn of(&self, overrides: &Overrides, system: &str) -> Option<MaintenanceWindow> {
        let global = match &overrides.global {
            Some(set) => set.clone(),
            None => self.global.clone(),
        };
        let system = system.to_lowercase();
        global.or_else(|| match overrides.systems.get(&system) {
            Some(set) => set.clone(),
            None => self.systems.get(&system).cloned(),
        })
    }

    /// Every system with a window, the global one apart.
    pub(crate) fn all(&self, overrides: &Overrides) -> MaintenanceConfig {
        let global = match &overrides.global {
            Some(set) => set.clone(),
            None => self.global.clone(),
        };
        let mut systems = self.systems.clone();
        for (system, set) in &overrides.systems {
            match set {
                Some(window) => systems.insert(system.clone(), window.clone()),
                None => systems.remove(system),
            };
        }
        MaintenanceConfig { global, systems }
    }
}

/// Maintenance set or ended through the admin routes, over the configuration's, until the
/// next reload: per system (lower-cased) and globally, `Some(window)` or `None` (ended).
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    pub(crate) global: Option<Option<MaintenanceWindow>>,
    pub(crate) systems: BTreeMap<String, Option<MaintenanceWindow>>,
}

/// The refusal of a request on a system in `window`.
pub(crate) fn refusal(window: &MaintenanceWindow, now: DateTime<Utc>) -> Denial {
    Denial::Maintenance {
        message: window.message.clone(),
        retry_after: retry_after(window, now),
    }
}

/// How long until the window's announced end, if it is announced and still ahead.
pub(crate) fn retry_after(window: &MaintenanceWindow, now: DateTime<Utc>) -> Option<Duration> {
    let until = DateTime::parse_from_rfc3339(window.until.as_deref()?).ok()?;
    (until.with_timezone(&Utc) - now).to_std().ok()
}

/// A termination rule, its pattern split into segments.
#[derive(Debug)]
pub(crate) struct Termination {
    methods: Vec<String>,
    segments: Vec<String>,
    system: Option<String>,
    status: u16,
    message: String,
}

impl Termination {
    pub(crate) fn new(rule: &TerminationRule) -> Self {
        Self {
            methods: rule.methods.iter().map(|m| m.to_uppercase()).collect(),
            segments: segments(&rule.path.to_lowercase())
                .map(str::to_owned)
                .collect(),
            system: rule.system.as_ref().map(|s| s.to_lowercase()),
            status: rule.status,
            message: rule.message.clone(),
        }
    }

    /// The refusal for a request this rule matches.
    pub(crate) fn check(&self, method: &str, path: &str, system: &str) -> Result<(), Denial> {
        let method_matches = self.methods.is_empty() || self.methods.iter().any(|m| m == method);
        let system_matches = self
            .system
            .as_ref()
            .is_none_or(|s| *s == system.to_lowercase());
        if method_matches && system_matches && self.matches_path(&path.to_lowercase()) {
            return Err(Denial::Terminated {
                status: self.status,
                message: self.message.clone(),
            });
        }
        Ok(())
    }

    fn matches_path(&self, path: &str) -> bool {
        let mut actual = segments(path);
        for pattern in &self.segments {
            if pattern == "**" {
                return true;
            }
            match actual.next() {
                Some(segment) if pattern == "*" || pattern == segment => {}
                _ => return false,
            }
        }
        actual.next().is_none()
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(message: &str, until: Option<&str>) -> MaintenanceWindow {
        MaintenanceWindow {
            message: message.into(),
            until: until.map(Into::into),
        }
    }

    #[test]
    fn a_system_or_everything_is_under_maintenance_until_its_end() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let maintenance = Maintenance::new(&MaintenanceConfig {
            global: None,
            systems: [(
                "Daint".to_string(),
                window("Upgrading Slurm", Some("2026-12-07T12:30:00+01:00")),
            )]
            .into(),
        });
        let none = Overrides::default();
        assert_eq!(maintenance.of(&none, "eiger"), None);
        let daint = maintenance.of(&none, "daint").unwrap();
        assert_eq!(
            refusal(&daint, now),
            Denial::Maintenance {
                message: "Upgrading Slurm".into(),
                retry_after: Some(Duration::from_secs(5400)),
            }
        );
        let late = now + chrono::Duration::hours(3);
        assert!(matches!(
            refusal(&daint, late),
            Denial::Maintenance {
                retry_after: None,
                ..
            }
        ));
        let everything = Maintenance::new(&MaintenanceConfig {
            global: Some(window("Power cut", None)),
            systems: BTreeMap::new(),
        });
        assert_eq!(everything.of(&none, "eiger").unwrap().message, "Power cut");
    }

    #[test]
    fn the_admins_overrides_win_over_the_configuration() {
        let maintenance = Maintenance::new(&MaintenanceConfig {
            global: None,
            systems: [("daint".to_string(), window("configured", None))].into(),
        });
        let overrides = Overrides {
            global: None,
            systems: [
                ("daint".to_string(), None),
                ("eiger".to_string(), Some(window("set by an admin", None))),
            ]
            .into(),
        };
        assert_eq!(maintenance.of(&overrides, "DAINT"), None);
        assert_eq!(
            maintenance.of(&overrides, "eiger").unwrap().message,
            "set by an admin"
        );
        let all = maintenance.all(&overrides);
        assert_eq!(all.systems.keys().collect::<Vec<_>>(), ["eiger"]);
        let everything = Overrides {
            global: Some(Some(window("all down", None))),
            systems: BTreeMap::new(),
        };
        assert_eq!(
            maintenance.of(&everything, "eiger").unwrap().message,
            "all down"
        );
    }

    #[test]
    fn termination_rules_match_method_path_pattern_and_system() {
        let rule = Termination::new(&TerminationRule {
            methods: vec!["post".into()],
            path: "/filesystem/*/ops/upload".into(),
            system: None,
            status: 403,
            message: "Uploads are disabled today.".into(),
        });
        assert!(
            rule.check("POST", "/filesystem/daint/ops/upload", "daint")
                .is_err()
        );
        assert!(
            rule.check("POST", "/filesystem/daint/ops/upload/", "daint")
                .is_err()
        );
        assert!(
            rule.check("GET", "/filesystem/daint/ops/upload", "daint")
                .is_ok()
        );
        assert!(
            rule.check("POST", "/filesystem/daint/ops/mkdir", "daint")
                .is_ok()
        );
        assert!(
            rule.check("POST", "/filesystem/daint/ops/upload/x", "daint")
                .is_ok()
        );
        let everything_on_eiger = Termination::new(&TerminationRule {
            methods: vec![],
            path: "/**".into(),
            system: Some("Eiger".into()),
            status: 503,
            message: "Eiger is closed.".into(),
        });
        assert!(
            everything_on_eiger
                .check("GET", "/status/eiger/userinfo", "eiger")
                .is_err()
        );
        assert!(
            everything_on_eiger
                .check("GET", "/status/daint/userinfo", "daint")
                .is_ok()
        );
    }
}
