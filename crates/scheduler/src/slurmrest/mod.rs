//! Slurm through slurmrestd (`connection_mode: rest` and `hybrid`). Every request carries
//! the caller's own token (`X-SLURM-USER-NAME` / `X-SLURM-USER-TOKEN`), and the configured
//! [`ApiVersion`] selects paths and request shapes. slurmrestd 22.05's quirks are mapped to
//! FirecREST statuses here: an unknown job (500 `Invalid job id specified`, or 200 with
//! `Nothing found`) is [`SchedulerError::JobNotFound`]; a refused token (401, or 500
//! `Unspecified error`) is [`SchedulerError::RestTokenRefused`], a dependency failure since
//! Ironcrest had accepted the token.
//!
//! What REST cannot do (the batch script and streams of a job, a `scriptPath` submit,
//! attach) runs over SSH in `hybrid` mode and is refused as unsupported in `rest` mode.

mod directives;
mod parse;
mod version;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;

pub use version::ApiVersion;

use crate::comment::{CommentedJob, JobComment};
use crate::job::now;
use crate::slurm::SlurmCli;
use crate::slurm::job_rows;
use crate::slurm::sbatch::is_policy_limit;
use crate::{
    Account, Job, JobDescription, JobFilter, JobId, JobMetadata, Node, Partition, PingStatus,
    Reservation, Scheduler, SchedulerError,
};
use ironcrest_remote::Caller;

const SLURM: &str = "Slurm";

pub struct SlurmRest {
    http: reqwest::Client,
    base_url: String,
    version: ApiVersion,
    timeout: Duration,
    /// The CLI for what REST cannot do (`hybrid`); `None` in `rest` mode.
    cli: Option<SlurmCli>,
    /// Users slurmrestd is known to map to themselves (see [`SlurmRest::check_user`]).
    known_users: Mutex<HashSet<String>>,
}

impl SlurmRest {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        version: ApiVersion,
        timeout: Duration,
        cli: Option<SlurmCli>,
    ) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            version,
            timeout,
            cli,
            known_users: Mutex::new(HashSet::new()),
        }
    }

    fn slurm_path(&self, rest: &str) -> String {
        format!("/slurm/{}/{rest}", self.version)
    }

    fn slurmdb_path(&self, rest: &str) -> String {
        format!("/slurmdb/{}/{rest}", self.version)
    }

    /// One request as `user`; the status and the JSON body, whatever the status.
    #[tracing::instrument(
        name = "slurmrestd.request",
        level = "debug",
        skip_all,
        fields(http.request.method = %method, url.path = path)
    )]
    async fn request(
        &self,
        user: &Caller,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(u16, Value), SchedulerError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .query(query)
            .timeout(self.timeout)
            .header("X-SLURM-USER-NAME", &user.username)
            .header("X-SLURM-USER-TOKEN", user.access_token.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| {
            SchedulerError::RestUnavailable(if err.is_timeout() {
                format!("slurmrestd did not answer within {:?}", self.timeout)
            } else {
                format!("cannot reach slurmrestd: {err}")
            })
        })?;
        let status = response.status().as_u16();
        // 22.05's answer to `update_time` when no job changed: no body at all.
        if status == 304 {
            return Ok((status, Value::Null));
        }
        let text = response
            .text()
            .await
            .map_err(|err| SchedulerError::RestUnavailable(format!("slurmrestd: {err}")))?;
        match serde_json::from_str(&text) {
            Ok(body) => Ok((status, body)),
            Err(_) if status == 401 || status == 403 => Err(SchedulerError::RestTokenRefused {
                message: text.trim().to_string(),
            }),
            Err(_) => Err(SchedulerError::RestApi {
                status,
                message: text.trim().chars().take(500).collect(),
            }),
        }
    }

    /// A request whose answer must be a success without `errors`.
    async fn call(
        &self,
        user: &Caller,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, SchedulerError> {
        let (status, body) = self.request(user, method, path, query, body).await?;
        let errors = parse::errors(&body);
        if (200..300).contains(&status) && errors.is_empty() {
            return Ok(body);
        }
        Err(classify(status, &errors))
    }

    fn cli(&self, what: &str) -> Result<&SlurmCli, SchedulerError> {
        self.cli.as_ref().ok_or_else(|| {
            SchedulerError::NotSupported(format!(
                "{what} is not available through slurmrestd; use connection_mode hybrid or ssh."
            ))
        })
    }

    /// slurmrestd 22.05 runs a validly signed token for a user unknown to the cluster as
    /// `nobody`: a submission is accepted and never starts. A user is let through once
    /// slurmdbd has an association for them.
    async fn check_user(&self, user: &Caller) -> Result<(), SchedulerError> {
        if self.is_known(&user.username) {
            return Ok(());
        }
        if self.accounts(user).await?.is_some_and(|a| !a.is_empty()) {
            if let Ok(mut known) = self.known_users.lock() {
                known.insert(user.username.clone());
            }
            return Ok(());
        }
        Err(SchedulerError::Rejected {
            scheduler: SLURM,
            message: format!("user {} has no Slurm association", user.username),
        })
    }

    fn is_known(&self, username: &str) -> bool {
        self.known_users
            .lock()
            .map(|known| known.contains(username))
            .unwrap_or(false)
    }

    /// The controller's and the accounting database's records of one job, merged.
    async fn lookup(&self, user: &Caller, job_id: &str) -> Result<Job, SchedulerError> {
        let controller_path = self.slurm_path(&format!("job/{job_id}"));
        let accounting_path = self.slurmdb_path(&format!("job/{job_id}"));
        let controller = self.call(user, Method::GET, &controller_path, &[], None);
        let accounting = self.call(user, Method::GET, &accounting_path, &[], None);
        let (controller, accounting) = tokio::join!(controller, accounting);
        let controller = found(controller)?
            .map(|body| parse::controller_jobs(&body, now()))
            .transpose()
            .map_err(unexpected)?
            .unwrap_or_default();
        let accounting = found(accounting)?
            .map(|body| parse::accounting_jobs(&body))
            .transpose()
            .map_err(unexpected)?
            .unwrap_or_default();
        job_rows::merge(accounting, controller)
            .into_iter()
            .find(|job| job.job_id == job_id)
            .ok_or(SchedulerError::JobNotFound)
    }
}

/// `JobNotFound` as an absent answer.
fn found(result: Result<Value, SchedulerError>) -> Result<Option<Value>, SchedulerError> {
    match result {
        Ok(body) => Ok(Some(body)),
        Err(SchedulerError::JobNotFound) => Ok(None),
        Err(err) => Err(err),
    }
}

fn unexpected(detail: String) -> SchedulerError {
    SchedulerError::RestApi {
        status: 200,
        message: detail,
    }
}

/// A failed slurmrestd answer as a [`SchedulerError`].
fn classify(status: u16, errors: &[String]) -> SchedulerError {
    let message = errors.join("; ");
    if status == 401 || status == 403 {
        return SchedulerError::RestTokenRefused { message };
    }
    if errors
        .iter()
        .any(|e| e.contains("Invalid job id specified") || e.starts_with("Nothing found"))
    {
        return SchedulerError::JobNotFound;
    }
    // 22.05 answers a token it cannot use with 500 "Unspecified error" and nothing else.
    if status == 500 && errors.iter().all(|e| e.starts_with("Unspecified error")) {
        return SchedulerError::RestTokenRefused { message };
    }
    SchedulerError::RestApi { status, message }
}

/// A failed submit: Slurm's refusal (bad partition, account, …) is the user's to fix.
fn submit_refusal(err: SchedulerError) -> SchedulerError {
    match err {
        SchedulerError::RestApi { status, message } => {
            let lower = message.to_ascii_lowercase();
            if is_policy_limit(&message) {
                SchedulerError::PolicyLimit { message }
            } else if lower.contains("invalid")
                || lower.contains("must be")
                || lower.contains("unable to open")
            {
                SchedulerError::Rejected {
                    scheduler: SLURM,
                    message,
                }
            } else {
                SchedulerError::RestApi { status, message }
            }
        }
        other => other,
    }
}

#[async_trait]
impl Scheduler for SlurmRest {
    #[tracing::instrument(
        name = "scheduler.nodes",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn nodes(&self, user: &Caller) -> Result<Vec<Node>, SchedulerError> {
        let body = self
            .call(user, Method::GET, &self.slurm_path("nodes"), &[], None)
            .await?;
        parse::nodes(&body).map_err(unexpected)
    }

    #[tracing::instrument(
        name = "scheduler.partitions",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn partitions(
        &self,
        user: &Caller,
        show_hidden: bool,
    ) -> Result<Vec<Partition>, SchedulerError> {
        let query: &[(&str, String)] = if show_hidden {
            &[("flags", "ALL".to_string())]
        } else {
            &[]
        };
        let body = self
            .call(
                user,
                Method::GET,
                &self.slurm_path("partitions"),
                query,
                None,
            )
            .await?;
        parse::partitions(&body, show_hidden).map_err(unexpected)
    }

    #[tracing::instrument(
        name = "scheduler.reservations",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn reservations(&self, user: &Caller) -> Result<Vec<Reservation>, SchedulerError> {
        let body = self
            .call(
                user,
                Method::GET,
                &self.slurm_path("reservations"),
                &[],
                None,
            )
            .await?;
        parse::reservations(&body, now()).map_err(unexpected)
    }

    #[tracing::instrument(
        name = "scheduler.accounts",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn accounts(&self, user: &Caller) -> Result<Option<Vec<Account>>, SchedulerError> {
        let (status, body) = self
            .request(
                user,
                Method::GET,
                &self.slurmdb_path("associations"),
                &[("user", user.username.clone())],
                None,
            )
            .await?;
        let errors = parse::errors(&body);
        // An unknown user: 200 with "Nothing found", like sacctmgr's empty answer.
        if (200..300).contains(&status)
            && (errors.is_empty() || errors.iter().all(|e| e.starts_with("Nothing found")))
        {
            return parse::accounts(&body).map(Some).map_err(unexpected);
        }
        Err(classify(status, &errors))
    }

    #[tracing::instrument(
        name = "scheduler.ping",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn ping(&self, user: &Caller) -> Result<Vec<PingStatus>, SchedulerError> {
        let body = self
            .call(user, Method::GET, &self.slurm_path("ping"), &[], None)
            .await?;
        parse::pings(&body).map_err(unexpected)
    }

    #[tracing::instrument(
        name = "scheduler.submit",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn submit(&self, user: &Caller, job: &JobDescription) -> Result<String, SchedulerError> {
        job.check().map_err(SchedulerError::InvalidArgument)?;
        let Some(script) = &job.script else {
            return self.cli("Submitting a scriptPath")?.submit(user, job).await;
        };
        if script.contains('\0') {
            return Err(SchedulerError::InvalidArgument(
                "Job fields must not contain NUL characters.".into(),
            ));
        }
        let environment = job.environment().map_err(SchedulerError::InvalidArgument)?;
        self.check_user(user).await?;
        let directives =
            directives::fields(script, self.version).map_err(SchedulerError::InvalidArgument)?;
        let body = parse::submit_body(
            self.version,
            job,
            script,
            &environment,
            directives,
            JobComment::of(user, job).as_ref(),
        );
        let answer = self
            .call(
                user,
                Method::POST,
                &self.slurm_path("job/submit"),
                &[],
                Some(&body),
            )
            .await
            .map_err(submit_refusal)?;
        parse::submitted_job_id(&answer).map_err(unexpected)
    }

    /// The controller's jobs and the accounting database's back to the time window (the
    /// caller's only where the API version can ask for that).
    #[tracing::instrument(
        name = "scheduler.fetch_jobs",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn fetch_jobs(
        &self,
        user: &Caller,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, SchedulerError> {
        let start_time = if self.version.epoch_start_time() {
            filter.earliest_end(now()).to_string()
        } else {
            format!("now-{}hours", filter.time_window.seconds() / 3600)
        };
        // The controller's listing takes no filters, and v0.0.38's accounting one no user
        // filter: `Scheduler::jobs` filters what they send.
        let mut db_query = vec![("start_time", start_time)];
        if !filter.all_users && self.version.accounting_user_filter() {
            db_query.push(("users", user.username.clone()));
        }
        let controller_path = self.slurm_path("jobs");
        let accounting_path = self.slurmdb_path("jobs");
        let controller = self.call(user, Method::GET, &controller_path, &[], None);
        let accounting = self.request(user, Method::GET, &accounting_path, &db_query, None);
        let (controller, accounting) = tokio::join!(controller, accounting);
        let controller = parse::controller_jobs(&controller?, now()).map_err(unexpected)?;
        let (status, accounting) = accounting?;
        let errors = parse::errors(&accounting);
        let accounting = if (200..300).contains(&status)
            && errors.iter().all(|e| e.starts_with("Nothing found"))
        {
            parse::accounting_jobs(&accounting).map_err(unexpected)?
        } else {
            return Err(classify(status, &errors));
        };
        Ok(job_rows::merge(accounting, controller))
    }

    /// The controller's jobs of every user, asked with `update_time` so that an unchanged
    /// job table costs slurmctld no listing: 22.05 answers 304, later versions a warning
    /// and no jobs.
    #[tracing::instrument(
        name = "scheduler.cluster_jobs",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn cluster_jobs(
        &self,
        user: &Caller,
        changed_since: Option<i64>,
    ) -> Result<Option<Vec<Job>>, SchedulerError> {
        let query: Vec<(&str, String)> = changed_since
            .map(|time| ("update_time", time.to_string()))
            .into_iter()
            .collect();
        let path = self.slurm_path("jobs");
        let (status, body) = self.request(user, Method::GET, &path, &query, None).await?;
        if status == 304 || parse::unchanged(&body) {
            return Ok(None);
        }
        let errors = parse::errors(&body);
        if !(200..300).contains(&status) || !errors.is_empty() {
            return Err(classify(status, &errors));
        }
        let rows = parse::controller_jobs(&body, now()).map_err(unexpected)?;
        Ok(Some(job_rows::merge(Vec::new(), rows)))
    }

    /// The accounting record of each job, asked for concurrently (v0.0.38's `/slurmdb/jobs`
    /// cannot select ids); records still active are left out.
    #[tracing::instrument(
        name = "scheduler.ended_jobs",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn ended_jobs(&self, user: &Caller, ids: &[JobId]) -> Result<Vec<Job>, SchedulerError> {
        let lookups = ids.iter().map(|id| {
            let path = self.slurmdb_path(&format!("job/{}", id.as_str()));
            async move { found(self.call(user, Method::GET, &path, &[], None).await) }
        });
        let mut rows = Vec::new();
        for answer in futures::future::join_all(lookups).await {
            if let Some(body) = answer? {
                rows.extend(parse::accounting_jobs(&body).map_err(unexpected)?);
            }
        }
        let mut jobs = job_rows::merge(rows, Vec::new());
        jobs.retain(|job| !job.is_active());
        Ok(jobs)
    }

    /// The controller's jobs (a pending job's comment is only there) and the accounting
    /// database's within the window, the caller's only.
    #[tracing::instrument(
        name = "scheduler.commented_jobs",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn commented_jobs(
        &self,
        user: &Caller,
        window_seconds: u64,
    ) -> Result<Vec<CommentedJob>, SchedulerError> {
        let start_time = if self.version.epoch_start_time() {
            (now() - i64::try_from(window_seconds).unwrap_or(i64::MAX)).to_string()
        } else {
            format!("now-{window_seconds}")
        };
        let mut db_query = vec![("start_time", start_time)];
        if self.version.accounting_user_filter() {
            db_query.push(("users", user.username.clone()));
        }
        let controller_path = self.slurm_path("jobs");
        let accounting_path = self.slurmdb_path("jobs");
        let controller = self.call(user, Method::GET, &controller_path, &[], None);
        let accounting = self.request(user, Method::GET, &accounting_path, &db_query, None);
        let (controller, accounting) = tokio::join!(controller, accounting);
        let mut jobs = parse::commented_jobs(&controller?, &user.username).map_err(unexpected)?;
        let (status, accounting) = accounting?;
        let errors = parse::errors(&accounting);
        if !((200..300).contains(&status) && errors.iter().all(|e| e.starts_with("Nothing found")))
        {
            return Err(classify(status, &errors));
        }
        let queued: HashSet<String> = jobs.iter().map(|job| job.job_id.clone()).collect();
        jobs.extend(
            parse::commented_jobs(&accounting, &user.username)
                .map_err(unexpected)?
                .into_iter()
                .filter(|job| !queued.contains(&job.job_id)),
        );
        Ok(jobs)
    }

    #[tracing::instrument(
        name = "scheduler.job",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn job(&self, user: &Caller, job_id: &str) -> Result<Job, SchedulerError> {
        self.lookup(user, job_id).await
    }

    #[tracing::instrument(
        name = "scheduler.job_metadata",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn job_metadata(
        &self,
        user: &Caller,
        job_id: &str,
    ) -> Result<JobMetadata, SchedulerError> {
        if let Some(cli) = &self.cli {
            return cli.job_metadata(user, job_id).await;
        }
        // Without the CLI the streams come from the controller's record, and the script,
        // which slurmrestd does not return, is `null` (as FirecREST v2 answers then).
        let path = self.slurm_path(&format!("job/{}", JobId::parse(job_id)?.as_str()));
        let body = self.call(user, Method::GET, &path, &[], None).await?;
        let streams = parse::job_streams(&body, job_id)
            .map_err(unexpected)?
            .ok_or(SchedulerError::JobNotFound)?;
        Ok(JobMetadata {
            job_id: job_id.to_string(),
            script: None,
            standard_input: streams.stdin,
            standard_output: streams.stdout,
            standard_error: streams.stderr,
        })
    }

    #[tracing::instrument(
        name = "scheduler.cancel",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn cancel(&self, user: &Caller, job_id: &str) -> Result<(), SchedulerError> {
        self.lookup(user, job_id).await?.check_cancellable()?;
        self.call(
            user,
            Method::DELETE,
            &self.slurm_path(&format!("job/{job_id}")),
            &[],
            None,
        )
        .await
        .map(drop)
        .map_err(|err| match err {
            SchedulerError::RestApi { message, .. } if message.contains("Access/permission") => {
                SchedulerError::AccessDenied {
                    scheduler: SLURM,
                    message,
                }
            }
            other => other,
        })
    }

    #[tracing::instrument(
        name = "scheduler.attach",
        level = "debug",
        skip_all,
        fields(scheduler = "slurmrest")
    )]
    async fn attach(
        &self,
        user: &Caller,
        job_id: &str,
        command: &str,
    ) -> Result<(), SchedulerError> {
        let cli = self.cli("Attaching to a job")?;
        self.lookup(user, job_id).await?.check_attachable()?;
        cli.attach(user, job_id, command).await
    }
}

#[cfg(test)]
mod tests;
