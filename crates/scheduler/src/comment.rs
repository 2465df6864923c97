//! The comment of a job Ironcrest submitted for a request: the request's ids, to join the
//! scheduler's records with Ironcrest's logs, the marks of its `Idempotency-Key`, so that a
//! retry finds the job again from any replica, after any restart, and, for a job that does
//! an operation of the API's (a transfer), what the operation is, so that `/tasks` reads it
//! back from the scheduler alone.
//!
//! `ironcrest request <id> [correlation <id>] [idempotency <key hash> <fingerprint hash>]
//! [task <kind> <work id> [args <arguments>]]`: words separated by single spaces; ids are
//! printable ASCII without spaces (checked by the API), hashes 16 lowercase hex digits, a
//! kind lowercase letters, a work id 32 lowercase hex digits and the arguments base64url
//! without padding. The whole stays within Slurm's 1024 bytes: arguments that would not
//! fit are left out.

use std::fmt;

use ironcrest_remote::{Caller, IdempotencyMark, RequestIds};

use crate::JobDescription;

/// The longest comment Slurm accepts (longer ones fail the submission).
pub const MAX_COMMENT_BYTES: usize = 1024;

/// What Ironcrest writes in (and reads back from) a job's comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobComment {
    pub ids: RequestIds,
    pub idempotency: Option<IdempotencyMark>,
    pub task: Option<TaskNote>,
}

/// The operation a job does for the API, as its comment records it. The scheduler crate
/// keeps it opaque: the services decide what kinds and arguments mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNote {
    /// The operation, lowercase letters (`mv`, `upload`, …).
    pub kind: String,
    /// What names the operation's files (its logs, its staged object): 32 lowercase hex
    /// digits.
    pub work_id: String,
    /// The operation's arguments, base64url without padding; `None` when they would not
    /// fit in the comment.
    pub arguments: Option<String>,
}

/// A job of the user's that carries Ironcrest's comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentedJob {
    pub job_id: String,
    pub comment: JobComment,
}

const HASH_DIGITS: usize = 16;

impl JobComment {
    /// The comment `job`, submitted for `user`'s request, carries; none for background
    /// work. The task's arguments are left out if the comment would exceed
    /// [`MAX_COMMENT_BYTES`] with them.
    pub fn of(user: &Caller, job: &JobDescription) -> Option<Self> {
        let mut comment = user.request_ids.as_ref().map(|ids| Self {
            ids: ids.clone(),
            idempotency: user.idempotency.clone(),
            task: job.task.clone(),
        })?;
        if comment.to_string().len() > MAX_COMMENT_BYTES
            && let Some(task) = &mut comment.task
        {
            task.arguments = None;
        }
        Some(comment)
    }

    /// Reads a comment Ironcrest wrote; anything else (a user's own comment, none) is `None`.
    pub fn parse(comment: &str) -> Option<Self> {
        let mut words = comment.split(' ');
        if (words.next(), words.next()) != (Some("ironcrest"), Some("request")) {
            return None;
        }
        let request_id = words.next().filter(|id| !id.is_empty())?.to_string();
        let mut comment = Self {
            ids: RequestIds {
                request_id,
                correlation_id: None,
            },
            idempotency: None,
            task: None,
        };
        while let Some(word) = words.next() {
            match word {
                "correlation" => {
                    let id = words.next().filter(|id| !id.is_empty())?;
                    comment.ids.correlation_id = Some(id.to_string());
                }
                "idempotency" => {
                    let (key_hash, fingerprint_hash) = (words.next()?, words.next()?);
                    if !is_hash(key_hash) || !is_hash(fingerprint_hash) {
                        return None;
                    }
                    comment.idempotency = Some(IdempotencyMark {
                        key_hash: key_hash.to_string(),
                        fingerprint_hash: fingerprint_hash.to_string(),
                    });
                }
                "task" => {
                    let (kind, work_id) = (words.next()?, words.next()?);
                    let kind_valid = (1..=16).contains(&kind.len())
                        && kind.bytes().all(|b| b.is_ascii_lowercase());
                    if !kind_valid || !is_hex(work_id, WORK_ID_DIGITS) {
                        return None;
                    }
                    comment.task = Some(TaskNote {
                        kind: kind.to_string(),
                        work_id: work_id.to_string(),
                        arguments: None,
                    });
                }
                "args" => {
                    let arguments = words.next()?;
                    let valid = !arguments.is_empty()
                        && arguments
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    let task = comment.task.as_mut().filter(|_| valid)?;
                    task.arguments = Some(arguments.to_string());
                }
                _ => return None,
            }
        }
        Some(comment)
    }
}

const WORK_ID_DIGITS: usize = 32;

fn is_hash(word: &str) -> bool {
    is_hex(word, HASH_DIGITS)
}

fn is_hex(word: &str, digits: usize) -> bool {
    word.len() == digits && word.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Display for JobComment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ironcrest request {}", self.ids.request_id)?;
        if let Some(correlation) = &self.ids.correlation_id {
            write!(f, " correlation {correlation}")?;
        }
        if let Some(mark) = &self.idempotency {
            write!(
                f,
                " idempotency {} {}",
                mark.key_hash, mark.fingerprint_hash
            )?;
        }
        if let Some(task) = &self.task {
            write!(f, " task {} {}", task.kind, task.work_id)?;
            if let Some(arguments) = &task.arguments {
                write!(f, " args {arguments}")?;
            }
        }
        Ok(())
    }
}

/// The jobs among `rows` (job id, comment) whose comment is Ironcrest's.
pub(crate) fn commented_jobs<'a>(
    rows: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<CommentedJob> {
    rows.into_iter()
        .filter_map(|(job_id, comment)| {
            JobComment::parse(comment).map(|comment| CommentedJob {
                job_id: job_id.to_string(),
                comment,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark() -> IdempotencyMark {
        IdempotencyMark {
            key_hash: "0123456789abcdef".into(),
            fingerprint_hash: "fedcba9876543210".into(),
        }
    }

    fn note(arguments: Option<&str>) -> TaskNote {
        TaskNote {
            kind: "upload".into(),
            work_id: "0123456789abcdef0123456789abcdef".into(),
            arguments: arguments.map(str::to_string),
        }
    }

    #[test]
    fn every_form_reads_back_as_written() {
        let ids = |correlation: Option<&str>| RequestIds {
            request_id: "r-1".into(),
            correlation_id: correlation.map(str::to_string),
        };
        for correlation in [None, Some("c.2")] {
            for idempotency in [None, Some(mark())] {
                for task in [
                    None,
                    Some(note(None)),
                    Some(note(Some("eyJwYXRoIjoiL2EifQ"))),
                ] {
                    let comment = JobComment {
                        ids: ids(correlation),
                        idempotency: idempotency.clone(),
                        task,
                    };
                    let written = comment.to_string();
                    assert_eq!(JobComment::parse(&written), Some(comment), "{written}");
                }
            }
        }
        assert_eq!(
            JobComment {
                ids: ids(Some("c")),
                idempotency: Some(mark()),
                task: Some(note(Some("e30"))),
            }
            .to_string(),
            "ironcrest request r-1 correlation c idempotency 0123456789abcdef fedcba9876543210 \
             task upload 0123456789abcdef0123456789abcdef args e30"
        );
    }

    #[test]
    fn other_comments_are_not_ironcrests() {
        for comment in [
            "",
            "(null)",
            "my own comment",
            "ironcrest",
            "ironcrest request",
            "ironcrest request r extra",
            "ironcrest request r correlation",
            "ironcrest request r idempotency 0123456789abcdef",
            "ironcrest request r idempotency 0123456789ABCDEF fedcba9876543210",
            "ironcrest request r idempotency 0123456789abcde fedcba9876543210",
            "ironcrest request r idempotency 0123456789abcdef fedcba9876543210 x",
            "ironcrest request r task upload",
            "ironcrest request r task Upload 0123456789abcdef0123456789abcdef",
            "ironcrest request r task upload 0123456789abcdef",
            "ironcrest request r args e30",
            "ironcrest request r task mv 0123456789abcdef0123456789abcdef args",
            "ironcrest request r task mv 0123456789abcdef0123456789abcdef args e3+",
        ] {
            assert_eq!(JobComment::parse(comment), None, "{comment:?}");
        }
    }

    #[test]
    fn arguments_that_would_not_fit_are_left_out() {
        let caller = |request_id: &str| {
            Caller::new("fireuser", "token").for_request(RequestIds {
                request_id: request_id.into(),
                correlation_id: None,
            })
        };
        let job = |arguments: &str| JobDescription {
            task: Some(note(Some(arguments))),
            ..JobDescription::default()
        };
        let short = JobComment::of(&caller("r"), &job("e30")).unwrap();
        assert_eq!(short.task, Some(note(Some("e30"))));
        let long = "A".repeat(MAX_COMMENT_BYTES);
        let dropped = JobComment::of(&caller("r"), &job(&long)).unwrap();
        assert_eq!(dropped.task, Some(note(None)));
        // Exactly at the limit they stay.
        let fixed = JobComment::of(&caller("r"), &job(""))
            .unwrap()
            .to_string()
            .len();
        let fitting = "A".repeat(MAX_COMMENT_BYTES - fixed);
        let kept = JobComment::of(&caller("r"), &job(&fitting)).unwrap();
        assert_eq!(kept.to_string().len(), MAX_COMMENT_BYTES);
        assert_eq!(kept.task, Some(note(Some(&fitting))));
        // Background work (no request) carries no comment.
        let background = Caller::new("fireuser", "token");
        assert_eq!(JobComment::of(&background, &job("e30")), None);
    }

    #[test]
    fn only_commented_jobs_are_kept() {
        let rows = [
            ("1", "ironcrest request a"),
            ("2", ""),
            (
                "3",
                "ironcrest request b idempotency 0123456789abcdef fedcba9876543210",
            ),
        ];
        let jobs = commented_jobs(rows);
        assert_eq!(
            jobs.iter().map(|j| j.job_id.as_str()).collect::<Vec<_>>(),
            ["1", "3"]
        );
        assert_eq!(jobs[1].comment.idempotency, Some(mark()));
    }
}
