//! The comment of a job Ironcrest submitted for a request: the request's ids, to join the
//! scheduler's records with Ironcrest's logs, and the marks of its `Idempotency-Key`, so
//! that a retry finds the job again from any replica, after any restart.
//!
//! `ironcrest request <id> [correlation <id>] [idempotency <key hash> <fingerprint hash>]`:
//! words separated by single spaces; ids are printable ASCII without spaces (checked by the
//! API), hashes 16 lowercase hex digits.

use std::fmt;

use ironcrest_remote::{Caller, IdempotencyMark, RequestIds};

/// What Ironcrest writes in (and reads back from) a job's comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobComment {
    pub ids: RequestIds,
    pub idempotency: Option<IdempotencyMark>,
}

/// A job of the user's that carries Ironcrest's comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentedJob {
    pub job_id: String,
    pub comment: JobComment,
}

const HASH_DIGITS: usize = 16;

impl JobComment {
    /// The comment a job submitted for `user`'s request carries; none for background work.
    pub fn of(user: &Caller) -> Option<Self> {
        user.request_ids.as_ref().map(|ids| Self {
            ids: ids.clone(),
            idempotency: user.idempotency.clone(),
        })
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
                _ => return None,
            }
        }
        Some(comment)
    }
}

fn is_hash(word: &str) -> bool {
    word.len() == HASH_DIGITS && word.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
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

    #[test]
    fn every_form_reads_back_as_written() {
        let ids = |correlation: Option<&str>| RequestIds {
            request_id: "r-1".into(),
            correlation_id: correlation.map(str::to_string),
        };
        for comment in [
            JobComment {
                ids: ids(None),
                idempotency: None,
            },
            JobComment {
                ids: ids(Some("c.2")),
                idempotency: None,
            },
            JobComment {
                ids: ids(None),
                idempotency: Some(mark()),
            },
            JobComment {
                ids: ids(Some("c.2")),
                idempotency: Some(mark()),
            },
        ] {
            let written = comment.to_string();
            assert_eq!(JobComment::parse(&written), Some(comment), "{written}");
        }
        assert_eq!(
            JobComment {
                ids: ids(Some("c")),
                idempotency: Some(mark())
            }
            .to_string(),
            "ironcrest request r-1 correlation c idempotency 0123456789abcdef fedcba9876543210"
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
        ] {
            assert_eq!(JobComment::parse(comment), None, "{comment:?}");
        }
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
