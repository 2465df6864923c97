//! The gateway in the binary: everything FirecREST v1's Kong gateway decided before a
//! request reached a service, decided in process for every request on a system, at the
//! one hook the API has for it (`admit` in the API's `call.rs`).
//!
//! [`Gateway::admit`] checks, in this order, each layer only when configured: the client's
//! address ([`ip`]), maintenance and termination rules ([`maintenance`]), the token's scopes
//! for the route family, the embedded policy (`policy`), OpenFGA ([`openfga`]), then the
//! rate limits (`limits`); an admitted request then waits for its user's concurrency slot,
//! when limited, and for one of the server's places (`overload`), shed when there is none. The first refusal is the answer, a [`Denial`]. The layers come from the
//! `gateway` configuration section and are swapped whole by [`Gateway::reload`] (SIGHUP), so
//! a request sees either the old rules or the new; OpenFGA (`auth.authorization`) is set at
//! startup.

pub mod api_keys;
mod family;
pub mod ip;
mod limits;
mod maintenance;
pub mod openfga;
mod overload;
mod policy;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ironcrest_auth::Grants;
use ironcrest_config::{
    GatewayConfig, MaintenanceConfig, MaintenanceWindow, Problem, WorkLimits, gateway_problems,
};
use secrecy::SecretString;

pub use api_keys::{KeyHolder, KeyRefusal};
pub use family::RouteFamily;
pub use limits::{RateState, whole_seconds};
pub use overload::ShedCause;

use crate::api_keys::ApiKeys;
use crate::ip::IpFilter;
use crate::limits::{Limits, Slot};
use crate::maintenance::{Maintenance, Overrides, Termination};
pub use crate::openfga::OpenFga;
use crate::overload::Place;
use crate::policy::Policy;

/// A request on a system, as the gateway sees it.
#[derive(Debug)]
pub struct Request<'a> {
    pub user: &'a str,
    pub grants: &'a Grants,
    pub system: &'a str,
    pub family: RouteFamily,
    pub method: &'a str,
    /// The request's path (lower-cased, as routed).
    pub path: &'a str,
    /// The route's path parameters but the system (e.g. `job_id`).
    pub params: &'a BTreeMap<String, String>,
    pub client_address: IpAddr,
    /// The caller's token, for an authorization service that wants it (OpenFGA, as v2).
    pub access_token: &'a SecretString,
}

/// Which layer refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    IpFilter,
    Maintenance,
    Termination,
    Scopes,
    Policy,
    OpenFga,
    RateLimit,
    Concurrency,
    Overload,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::IpFilter => "ip_filter",
            Layer::Maintenance => "maintenance",
            Layer::Termination => "termination",
            Layer::Scopes => "scopes",
            Layer::Policy => "policy",
            Layer::OpenFga => "openfga",
            Layer::RateLimit => "rate_limit",
            Layer::Concurrency => "concurrency",
            Layer::Overload => "overload",
        }
    }
}

/// Why a request is not served; the API answers each with its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// 403.
    #[error("{reason}")]
    Forbidden { layer: Layer, reason: String },
    /// 503 with `reason: maintenance` (and `Retry-After` when the end is known).
    #[error("{message}")]
    Maintenance {
        message: String,
        retry_after: Option<Duration>,
    },
    /// A termination rule's status and message.
    #[error("{message}")]
    Terminated { status: u16, message: String },
    /// 503: a layer could not decide (its service down or too slow); refused, fail closed.
    #[error("{message}")]
    Unavailable { layer: Layer, message: String },
    /// 429 with `Retry-After`; from a token bucket, also the `RateLimit-Policy` and
    /// `RateLimit` headers (`rate`).
    #[error("{message}")]
    TooManyRequests {
        layer: Layer,
        message: String,
        retry_after: Duration,
        rate: Option<RateState>,
    },
    /// The server sheds load: `status` (503, or 429 when configured) with `Retry-After`.
    #[error("{message}")]
    Overloaded {
        message: String,
        cause: ShedCause,
        retry_after: Duration,
        status: u16,
    },
}

impl Denial {
    pub fn layer(&self) -> Layer {
        match self {
            Denial::Forbidden { layer, .. } => *layer,
            Denial::Maintenance { .. } => Layer::Maintenance,
            Denial::Terminated { .. } => Layer::Termination,
            Denial::Unavailable { layer, .. } => *layer,
            Denial::TooManyRequests { layer, .. } => *layer,
            Denial::Overloaded { .. } => Layer::Overload,
        }
    }
}

/// What an admitted request holds until it ends.
#[derive(Debug, Default)]
pub struct Permit {
    /// The user's concurrency slot, when concurrency is limited.
    _slot: Option<Slot>,
    /// The request's place among the server's, when shedding is on.
    _place: Option<Place>,
}

/// The rules of one configuration; replaced whole on reload.
#[derive(Debug, Default)]
struct Rules {
    ip_filter: IpFilter,
    maintenance: Maintenance,
    terminate: Vec<Termination>,
    scopes: Vec<(RouteFamily, Vec<String>)>,
    api_keys: Option<ApiKeys>,
    policy: Option<Policy>,
    limits: Limits,
    /// Caps on work a user has started; the transfer service applies them.
    work: WorkLimits,
}

impl Rules {
    fn build(config: &GatewayConfig) -> Result<Self, Vec<Problem>> {
        let problems = gateway_problems(config);
        if !problems.is_empty() {
            return Err(problems);
        }
        let api_keys = config.api_keys.as_ref().map(ApiKeys::load).transpose()?;
        let policy = config.policy.as_ref().map(Policy::load).transpose()?;
        Ok(Self {
            api_keys,
            ip_filter: IpFilter::new(&config.ip_filter),
            maintenance: Maintenance::new(&config.maintenance),
            terminate: config.terminate.iter().map(Termination::new).collect(),
            scopes: config
                .scopes
                .iter()
                .filter_map(|(name, scopes)| Some((RouteFamily::named(name)?, scopes.clone())))
                .collect(),
            policy,
            limits: Limits::new(&config.limits),
            work: config.limits.work.clone(),
        })
    }

    fn check_scopes(&self, request: &Request<'_>) -> Result<(), Denial> {
        let Some((_, required)) = self.scopes.iter().find(|(f, _)| *f == request.family) else {
            return Ok(());
        };
        let missing: Vec<&str> = required
            .iter()
            .filter(|scope| !request.grants.scopes.contains(scope))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Denial::Forbidden {
            layer: Layer::Scopes,
            reason: format!(
                "The token lacks the scope(s) {} needed for {} requests.",
                missing.join(", "),
                request.family.as_str()
            ),
        })
    }
}

/// The gateway of one server. Cheap to share (`Arc` it).
#[derive(Debug, Default)]
pub struct Gateway {
    rules: RwLock<Arc<Rules>>,
    /// Maintenance set through the admin routes; a reload forgets it.
    overrides: RwLock<Overrides>,
    /// The scope the admin routes need (`gateway.admin_scope`), of the current rules.
    admin_scope: RwLock<Option<String>>,
    openfga: Option<OpenFga>,
}

impl Gateway {
    /// The gateway of a configuration; its problems (every one) when it has some.
    pub fn new(config: &GatewayConfig) -> Result<Self, Vec<Problem>> {
        Ok(Self {
            rules: RwLock::new(Arc::new(Rules::build(config)?)),
            overrides: RwLock::default(),
            admin_scope: RwLock::new(config.admin_scope.clone()),
            openfga: None,
        })
    }

    /// Asks `openfga` too, after every other layer let a request through.
    #[must_use]
    pub fn with_openfga(mut self, openfga: OpenFga) -> Self {
        self.openfga = Some(openfga);
        self
    }

    /// Replaces every rule at once; on problems the old rules stay and the problems are
    /// returned.
    pub fn reload(&self, config: &GatewayConfig) -> Result<(), Vec<Problem>> {
        let rules = Arc::new(Rules::build(config)?);
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = rules;
        *self
            .overrides
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Overrides::default();
        *self
            .admin_scope
            .write()
            .unwrap_or_else(PoisonError::into_inner) = config.admin_scope.clone();
        Ok(())
    }

    /// Reads the configuration file at `path` and reloads from it (every problem returned,
    /// nothing changed, when it has some).
    pub fn reload_file(&self, path: &std::path::Path) -> Result<(), Vec<Problem>> {
        let config = ironcrest_config::Config::load(path).map_err(|err| err.problems())?;
        self.reload(&config.gateway)
    }

    /// The scopes a token needs for `family`'s routes (none when not configured).
    pub fn required_scopes(&self, family: RouteFamily) -> Vec<String> {
        self.rules()
            .scopes
            .iter()
            .find(|(f, _)| *f == family)
            .map(|(_, scopes)| scopes.clone())
            .unwrap_or_default()
    }

    /// The caps on work a user may have started (`gateway.limits.work`), as now configured.
    pub fn work_limits(&self) -> WorkLimits {
        self.rules().work.clone()
    }

    /// The scope a token needs for the admin routes; `None`: they are off.
    pub fn admin_scope(&self) -> Option<String> {
        self.admin_scope
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `system` (every system when `None`) under maintenance in `window`, or ends its
    /// maintenance (`None`), over the configuration until the next reload.
    pub fn set_maintenance(&self, system: Option<&str>, window: Option<MaintenanceWindow>) {
        let mut overrides = self
            .overrides
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match system {
            None => overrides.global = Some(window),
            Some(system) => {
                overrides.systems.insert(system.to_lowercase(), window);
            }
        }
    }

    /// Who the API key `key` stands for, used from `address`; `None` when API keys are off.
    pub fn key_holder(&self, key: &str, address: IpAddr) -> Option<Result<KeyHolder, KeyRefusal>> {
        let rules = self.rules();
        let keys = rules.api_keys.as_ref()?;
        let holder = keys.holder(key, address, chrono::Utc::now());
        match &holder {
            Ok(holder) => {
                tracing::debug!(api_key = holder.id, user = holder.user, "API key accepted")
            }
            Err(refusal) => tracing::info!(%refusal, "API key refused"),
        }
        Some(holder)
    }

    /// The maintenance in force: globally and per system.
    pub fn maintenance_overview(&self) -> MaintenanceConfig {
        let overrides = self
            .overrides
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.rules().maintenance.all(&overrides)
    }

    fn rules(&self) -> Arc<Rules> {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Lets `request` through, or says why not. Every decision is logged at debug level,
    /// every denial at info level with its layer.
    pub async fn admit(&self, request: &Request<'_>) -> Result<Permit, Denial> {
        let rules = self.rules();
        let mut decided = self.decide(&rules, request);
        if let (Ok(()), Some(openfga)) = (&decided, &self.openfga) {
            decided = openfga.check(request).await;
        }
        // Limits last, so a request refused for another reason spends no token and no slot.
        if decided.is_ok() {
            decided = rules.limits.rates.check(request);
        }
        // The user's slot first: a request waiting behind its own user's others holds none
        // of the server's places.
        let decided = match decided {
            Ok(()) => match rules.limits.enter(request).await {
                Ok(slot) => rules.limits.place(request).await.map(|place| Permit {
                    _slot: slot,
                    _place: place,
                }),
                Err(denial) => Err(denial),
            },
            Err(denial) => Err(denial),
        };
        let outcome = match &decided {
            Ok(_) => "allowed",
            Err(denial) => denial.layer().as_str(),
        };
        metrics::counter!(
            "ironcrest_gateway_decisions_total",
            "family" => request.family.as_str(),
            "outcome" => outcome,
        )
        .increment(1);
        match &decided {
            Ok(_) => tracing::debug!(
                gateway.user = request.user,
                gateway.system = request.system,
                gateway.family = request.family.as_str(),
                gateway.result = "allow",
                "admitted"
            ),
            Err(denial) => tracing::info!(
                gateway.user = request.user,
                gateway.system = request.system,
                gateway.family = request.family.as_str(),
                gateway.layer = denial.layer().as_str(),
                gateway.result = "deny",
                gateway.reason = %denial,
                "denied"
            ),
        }
        decided
    }

    fn decide(&self, rules: &Rules, request: &Request<'_>) -> Result<(), Denial> {
        let client = request.grants.client_id.as_deref();
        if let Some(reason) = rules.ip_filter.refusal(request.client_address, client) {
            return Err(Denial::Forbidden {
                layer: Layer::IpFilter,
                reason,
            });
        }
        // From the same snapshot of the rules as every other layer (a reload in between
        // must not mix old and new).
        let window = {
            let overrides = self
                .overrides
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            rules.maintenance.of(&overrides, request.system)
        };
        if let Some(window) = window {
            return Err(maintenance::refusal(&window, chrono::Utc::now()));
        }
        for rule in &rules.terminate {
            rule.check(request.method, request.path, request.system)?;
        }
        rules.check_scopes(request)?;
        if let Some(policy) = &rules.policy {
            policy.check(request)?;
        }
        Ok(())
    }

    /// The maintenance window `system` is in, if any, for `status/systems` to show.
    pub fn maintenance(&self, system: &str) -> Option<MaintenanceWindow> {
        let overrides = self
            .overrides
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.rules().maintenance.of(&overrides, system)
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::MetricKind;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

    use super::*;

    static TOKEN: std::sync::LazyLock<SecretString> =
        std::sync::LazyLock::new(|| SecretString::from("a-token"));

    fn request<'a>(grants: &'a Grants, params: &'a BTreeMap<String, String>) -> Request<'a> {
        Request {
            user: "alice",
            grants,
            system: "daint",
            family: RouteFamily::FilesystemWrite,
            method: "POST",
            path: "/filesystem/daint/ops/upload",
            params,
            client_address: "127.0.0.1".parse().unwrap(),
            access_token: &TOKEN,
        }
    }

    fn config(yaml: &str) -> GatewayConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[tokio::test]
    async fn an_empty_configuration_admits_everything() {
        let gateway = Gateway::new(&GatewayConfig::default()).unwrap();
        let params = BTreeMap::new();
        assert!(
            gateway
                .admit(&request(&Grants::default(), &params))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn scopes_are_required_per_family_and_named_when_missing() {
        let gateway = Gateway::new(&config(
            "scopes: {filesystem-write: [fs:write, hpc], filesystem-read: [fs:read]}",
        ))
        .unwrap();
        let params = BTreeMap::new();
        let reader = Grants {
            scopes: vec!["fs:read".into(), "hpc".into()],
            ..Grants::default()
        };
        match gateway.admit(&request(&reader, &params)).await {
            Err(Denial::Forbidden { layer, reason }) => {
                assert_eq!(layer, Layer::Scopes);
                assert!(
                    reason.contains("fs:write") && !reason.contains("hpc"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        let writer = Grants {
            scopes: vec!["hpc".into(), "fs:write".into()],
            ..Grants::default()
        };
        assert!(gateway.admit(&request(&writer, &params)).await.is_ok());
    }

    /// `ironcrest_gateway_decisions_total` as recorded so far, by (family, outcome).
    fn decisions(snapshotter: &Snapshotter) -> BTreeMap<(String, String), u64> {
        let mut counted = BTreeMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            if kind != MetricKind::Counter || key.name() != "ironcrest_gateway_decisions_total" {
                continue;
            }
            let label = |name: &str| {
                key.labels()
                    .find(|label| label.key() == name)
                    .map(|label| label.value().to_string())
                    .unwrap_or_default()
            };
            let DebugValue::Counter(count) = value else {
                panic!("{value:?}")
            };
            counted.insert((label("family"), label("outcome")), count);
        }
        counted
    }

    #[tokio::test]
    async fn layers_refuse_in_order_and_a_reload_swaps_every_rule() {
        // This test's own recorder (the runtime polls on this thread): counts start at zero.
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _recording = metrics::set_default_local_recorder(&recorder);
        let gateway = Gateway::new(&config(
            r#"
ip_filter: {deny: [127.0.0.0/8]}
maintenance: {systems: {daint: {message: down}}}
"#,
        ))
        .unwrap();
        let params = BTreeMap::new();
        let grants = Grants::default();
        let denial = gateway.admit(&request(&grants, &params)).await.unwrap_err();
        assert_eq!(denial.layer(), Layer::IpFilter);

        let bad = config("ip_filter: {deny: [not-a-network]}");
        let problems = gateway.reload(&bad).unwrap_err();
        assert_eq!(problems[0].field, "gateway.ip_filter.deny");
        let still = gateway.admit(&request(&grants, &params)).await.unwrap_err();
        assert_eq!(
            still.layer(),
            Layer::IpFilter,
            "a bad reload keeps the old rules"
        );

        gateway
            .reload(&config(
                r#"
maintenance: {systems: {DAINT: {message: down}}}
terminate: [{path: "/filesystem/*/ops/upload", status: 403, message: no uploads}]
"#,
            ))
            .unwrap();
        let denial = gateway.admit(&request(&grants, &params)).await.unwrap_err();
        assert_eq!(denial.layer(), Layer::Maintenance);
        assert_eq!(gateway.maintenance("daint").unwrap().message, "down");

        gateway
            .reload(&config(
                r#"terminate: [{path: "/filesystem/*/ops/upload", status: 403, message: no uploads}]"#,
            ))
            .unwrap();
        assert_eq!(
            gateway.admit(&request(&grants, &params)).await.unwrap_err(),
            Denial::Terminated {
                status: 403,
                message: "no uploads".into()
            }
        );
        assert!(gateway.maintenance("daint").is_none());
        let counted = decisions(&snapshotter);
        let family = |outcome: &str| ("filesystem-write".to_string(), outcome.to_string());
        assert_eq!(
            counted,
            BTreeMap::from([
                (family("ip_filter"), 2),
                (family("maintenance"), 1),
                (family("termination"), 1),
            ])
        );
    }

    #[tokio::test]
    async fn limits_come_last_and_a_permit_holds_its_concurrency_slot() {
        let gateway = Gateway::new(&config(
            r#"
scopes: {filesystem-write: [fs:write]}
limits:
  rates: [{per: user, requests: 2, period: 60}]
  concurrency: {per_user: 1, queue_timeout: 0}
"#,
        ))
        .unwrap();
        let params = BTreeMap::new();
        let (nobody, writer) = (
            Grants::default(),
            Grants {
                scopes: vec!["fs:write".into()],
                ..Grants::default()
            },
        );
        // A request refused by its scopes takes no token.
        for _ in 0..3 {
            let denial = gateway.admit(&request(&nobody, &params)).await.unwrap_err();
            assert_eq!(denial.layer(), Layer::Scopes);
        }
        let permit = gateway.admit(&request(&writer, &params)).await.unwrap();
        let denial = gateway.admit(&request(&writer, &params)).await.unwrap_err();
        assert_eq!(denial.layer(), Layer::Concurrency);
        drop(permit);
        let denial = gateway.admit(&request(&writer, &params)).await.unwrap_err();
        assert_eq!(denial.layer(), Layer::RateLimit, "two tokens spent");

        // A reload starts with full buckets.
        gateway
            .reload(&config(
                "limits: {rates: [{per: user, requests: 2, period: 60}]}",
            ))
            .unwrap();
        assert!(gateway.admit(&request(&writer, &params)).await.is_ok());
    }

    #[tokio::test]
    async fn a_request_waits_for_its_users_slot_before_a_place_and_a_shed_one_is_counted() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _recording = metrics::set_default_local_recorder(&recorder);
        let gateway = Gateway::new(&config(
            r#"
limits:
  concurrency: {per_user: 1, queue_timeout: 0}
  overload: {max_in_flight: 1, max_queued: 0, retry_after: 2}
"#,
        ))
        .unwrap();
        let params = BTreeMap::new();
        let grants = Grants::default();
        let alice = request(&grants, &params);
        let bob = Request {
            user: "bob",
            ..request(&grants, &params)
        };
        let permit = gateway.admit(&alice).await.unwrap();
        // Refused by her own slot: she takes no place, and is not counted as shed.
        let denial = gateway.admit(&alice).await.unwrap_err();
        assert_eq!(denial.layer(), Layer::Concurrency);
        match gateway.admit(&bob).await.unwrap_err() {
            Denial::Overloaded {
                cause,
                retry_after,
                status,
                ..
            } => {
                assert_eq!(cause, ShedCause::QueueFull);
                assert_eq!(retry_after, Duration::from_secs(2));
                assert_eq!(status, 503);
            }
            other => panic!("{other:?}"),
        }
        drop(permit);
        assert!(gateway.admit(&bob).await.is_ok(), "the place came back");
        let family = |outcome: &str| ("filesystem-write".to_string(), outcome.to_string());
        assert_eq!(
            decisions(&snapshotter),
            BTreeMap::from([
                (family("allowed"), 2),
                (family("concurrency"), 1),
                (family("overload"), 1),
            ])
        );
    }
}
