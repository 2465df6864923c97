//! Path validation for every filesystem operation: a path must be absolute, carry no NUL,
//! and after lexical normalisation equal or lie under one of the cluster's configured
//! `file_systems[].path`. Always on (FirecREST v2 only checks when probing is configured).
//! Paths are bytes, so non-UTF-8 names pass through unchanged.

use ironcrest_config::ClusterConfig;

use crate::ServiceError;

/// A path that passed [`validate`]: absolute, normalised, under a configured file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPath {
    bytes: Vec<u8>,
    /// The configured file system the path lies under.
    file_system: String,
}

impl ValidPath {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn file_system(&self) -> &str {
        &self.file_system
    }

    /// `self/name` for a single path component `name` (no `/`, not `.`/`..`, no NUL).
    pub fn join(&self, name: &[u8]) -> Result<ValidPath, ServiceError> {
        if name.is_empty()
            || name == b"."
            || name == b".."
            || name.contains(&b'/')
            || name.len() > NAME_MAX
        {
            return Err(ServiceError::InvalidRequest(format!(
                "The file name ({}) is not a valid file name.",
                display(name)
            )));
        }
        if name.contains(&0) {
            return Err(nul_error());
        }
        let mut bytes = self.bytes.clone();
        if !bytes.ends_with(b"/") {
            bytes.push(b'/');
        }
        bytes.extend_from_slice(name);
        Ok(ValidPath {
            bytes,
            file_system: self.file_system.clone(),
        })
    }

    /// The directory holding this path and its last component (`/a/b` → `/a`, `b`).
    pub fn split_parent(&self) -> (&[u8], &[u8]) {
        match self.bytes.iter().rposition(|b| *b == b'/') {
            Some(0) => (b"/", &self.bytes[1..]),
            Some(i) => (&self.bytes[..i], &self.bytes[i + 1..]),
            None => (b".", &self.bytes),
        }
    }
}

fn nul_error() -> ServiceError {
    ServiceError::InvalidRequest(
        "The provided path contains a NUL byte, which no file name can carry.".into(),
    )
}

/// The longest file name the cluster's file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Checks that `raw` ends in a name a new entry can have (`field` names it in the message):
/// not empty or `/`-terminated, not `.` or `..`, at most [`NAME_MAX`] bytes. Normalising
/// alone would turn `dir/.` or `dir/` into `dir`, and a link would land inside it.
pub fn check_new_name(field: &'static str, raw: &[u8]) -> Result<(), ServiceError> {
    if raw.contains(&0) {
        return Err(ServiceError::InvalidField {
            field,
            message: format!(
                "The path given as `{field}` contains a NUL byte, which no file name can carry."
            ),
        });
    }
    let name = raw.rsplit(|b| *b == b'/').next().unwrap_or_default();
    let problem = match name {
        b"" => "ends in '/' or is empty",
        b"." | b".." => "ends in '.' or '..'",
        _ if name.len() > NAME_MAX => "has a last component longer than 255 bytes",
        _ => return Ok(()),
    };
    Err(ServiceError::InvalidField {
        field,
        message: format!(
            "The path given as `{field}` ({}) {problem}: it must end in the name of the new entry.",
            display(raw)
        ),
    })
}

/// Text for messages: lossy, since messages are JSON strings.
pub(crate) fn display(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks `raw` against the cluster's file systems (FirecREST v2's messages).
pub fn validate(config: &ClusterConfig, raw: &[u8]) -> Result<ValidPath, ServiceError> {
    if raw.contains(&0) {
        return Err(nul_error());
    }
    if !raw.starts_with(b"/") {
        return Err(ServiceError::InvalidRequest(format!(
            "The provided path ({}) is not an absolute path.",
            display(raw)
        )));
    }
    if raw.split(|b| *b == b'/').any(|name| name.len() > NAME_MAX) {
        return Err(ServiceError::InvalidRequest(format!(
            "The provided path ({}) has a name longer than {NAME_MAX} bytes, which no file system here takes.",
            display(raw)
        )));
    }
    let bytes = normalise(raw);
    let file_system = config
        .file_systems
        .iter()
        .map(|fs| fs.path.as_str())
        .filter(|fs| is_under(&bytes, fs.as_bytes()))
        .max_by_key(|fs| fs.len());
    match file_system {
        Some(fs) => Ok(ValidPath {
            bytes,
            file_system: fs.to_string(),
        }),
        None => Err(ServiceError::InvalidRequest(format!(
            "The provided path ({}) does not match any of the defined filesystem paths for the requested system ({}).",
            display(raw),
            config.name
        ))),
    }
}

/// Whether `path` equals `root` or lies under it (component-wise).
pub(crate) fn is_under(path: &[u8], root: &[u8]) -> bool {
    let root = if root.len() > 1 {
        root.strip_suffix(b"/").unwrap_or(root)
    } else {
        root
    };
    root == b"/" || path == root || (path.starts_with(root) && path.get(root.len()) == Some(&b'/'))
}

/// Lexical normalisation of an absolute path, as Python's `os.path.normpath`, on bytes.
fn normalise(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for part in &parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClusterConfig {
        let yaml = r#"
name: c
ssh: {host: h, port: 22}
scheduler: {type: slurm, version: "1"}
service_account: {client_id: a, secret: b}
probing: {interval: 10}
file_systems:
  - {path: /home, data_type: users}
  - {path: /scratch/x, data_type: scratch}
"#;
        serde_yaml_ng::from_str(yaml).expect("cluster config")
    }

    #[test]
    fn path_validation_table() {
        let config = config();
        let ok: &[(&[u8], &[u8], &str)] = &[
            (b"/home", b"/home", "/home"),
            (b"/home/u/f", b"/home/u/f", "/home"),
            (b"//home//u/./f/", b"/home/u/f", "/home"),
            (b"/home/u/../v", b"/home/v", "/home"),
            (b"/scratch/x/y", b"/scratch/x/y", "/scratch/x"),
            (b"/home/\xff\xfe", b"/home/\xff\xfe", "/home"),
            (
                b"/home/a'b $(x) `y` \n\t-*?[",
                b"/home/a'b $(x) `y` \n\t-*?[",
                "/home",
            ),
        ];
        for (raw, normalised, fs) in ok {
            let path = validate(&config, raw).expect("valid");
            assert_eq!(path.as_bytes(), *normalised, "{raw:?}");
            assert_eq!(path.file_system(), *fs);
        }
        let bad: &[(&[u8], &str)] = &[
            (
                b"home/u",
                "The provided path (home/u) is not an absolute path.",
            ),
            (b"", "The provided path () is not an absolute path."),
            (
                b"/home/\0x",
                "The provided path contains a NUL byte, which no file name can carry.",
            ),
            (
                b"/etc/passwd",
                "The provided path (/etc/passwd) does not match any of the defined filesystem paths for the requested system (c).",
            ),
            (
                b"/homework",
                "The provided path (/homework) does not match any of the defined filesystem paths for the requested system (c).",
            ),
            (
                b"/home/../etc",
                "The provided path (/home/../etc) does not match any of the defined filesystem paths for the requested system (c).",
            ),
            (
                b"/scratch",
                "The provided path (/scratch) does not match any of the defined filesystem paths for the requested system (c).",
            ),
        ];
        for (raw, message) in bad {
            let error = validate(&config, raw).expect_err("invalid");
            assert!(matches!(error, ServiceError::InvalidRequest(_)));
            assert_eq!(error.to_string(), *message);
        }
    }

    #[test]
    fn joining_a_file_name_refuses_separators() {
        let dir = validate(&config(), b"/home/u").expect("valid");
        assert_eq!(dir.join(b"-a b").expect("ok").as_bytes(), b"/home/u/-a b");
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert!(dir.join(bad).is_err(), "{bad:?}");
        }
        assert_eq!(dir.split_parent(), (&b"/home"[..], &b"u"[..]));
    }

    #[test]
    fn new_entries_need_a_name_of_their_own() {
        for ok in [
            &b"/home/u/x"[..],
            b"/home/u/.x",
            b"/home/u/..x",
            &[b'n'; 255],
        ] {
            assert!(check_new_name("linkPath", ok).is_ok(), "{ok:?}");
        }
        let long = [b"/home/u/".as_slice(), &[b'n'; 256]].concat();
        for bad in [
            &b""[..],
            b"/",
            b"/home/u/",
            b"/home/u/.",
            b"/home/u/..",
            &long,
        ] {
            let Err(ServiceError::InvalidField { field, message }) =
                check_new_name("linkPath", bad)
            else {
                panic!("{bad:?} accepted");
            };
            assert_eq!(field, "linkPath");
            assert!(message.contains("linkPath"), "{message}");
        }
    }
}
