//! Integration tests: Ironcrest runs in-process on 127.0.0.1:0 in front of the real
//! services of the dev environment (Slurm, sshd with the user CA, the OIDC provider).
//! Run them through `scripts/test`, which starts that environment and exports its
//! `IRONCREST_DEV_*` variables.

mod audit;
mod auth;
mod authorization;
mod cli;
mod compute;
mod compute_rest;
mod conditional;
mod delegation;
mod events;
mod filesystem;
mod gateway;
mod guard;
mod harness;
mod idempotency;
mod limits;
mod metrics;
mod overload;
mod status;
mod tasks;
mod transfer;
