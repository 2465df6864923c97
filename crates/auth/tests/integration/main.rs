//! Integration tests against a fake IdP on 127.0.0.1 (see `support`).

mod client_credentials;
mod support;
mod verifier;
