//! What runs on a cluster, and as whom. Every command that Ironcrest runs on a cluster is a
//! small type implementing [`RemoteCommand`]: it builds its [`CommandLine`] and parses the
//! [`Output`]; it runs as a [`Caller`], the request's authenticated user.
//!
//! Invariant: this crate is the only place that turns values into shell words. A
//! [`CommandLine`] can only be built through [`CommandLine::builder`], which quotes every
//! argument, so a path, user name or job field can never be read by the remote shell as code.

mod caller;
mod command;
mod quote;
mod shape;

pub use caller::{Caller, IdempotencyMark, RequestIds};
pub use command::{CommandError, CommandExamples, Output, RemoteCommand};
pub use quote::{
    CORRELATION_ID_VARIABLE, Checked, CommandLine, CommandLineBuilder, QuoteError,
    REQUEST_ID_VARIABLE, quote, quote_for_bash_script,
};
pub use shape::{Allowlist, LineIds, Refusal, Shape};
