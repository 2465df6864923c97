//! [`Caller`]: whom a remote command runs as.

use std::fmt;

use secrecy::SecretString;

/// The authenticated caller of a request: the cluster account its commands run as, and the
/// access token it came with. The token is only ever sent to an external key service, and
/// `Debug` leaves it out.
#[derive(Clone)]
pub struct Caller {
    pub username: String,
    pub access_token: SecretString,
}

impl Caller {
    pub fn new(username: impl Into<String>, access_token: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            access_token: SecretString::from(access_token.into()),
        }
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::Caller;

    #[test]
    fn debug_leaves_the_token_out() {
        let caller = Caller::new("fireuser", "secret-token");
        let shown = format!("{caller:?}");
        assert_eq!(shown, r#"Caller { username: "fireuser", .. }"#);
    }
}
