//! Quoting for POSIX shells, and the builder of command lines.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("argument contains a NUL byte, which no shell argument can carry")]
    Nul,
}

/// Quotes one word for a POSIX shell. Bytes, not text: file names need not be UTF-8.
pub fn quote(word: &[u8]) -> Result<Cow<'_, [u8]>, QuoteError> {
    if word.is_empty() {
        return Ok(Cow::Borrowed(b"''"));
    }
    shlex::bytes::try_quote(word).map_err(|_| QuoteError::Nul)
}

/// A complete command line for the remote login shell, as bytes.
///
/// Every command runs with `LC_ALL=C`, so that messages (which the API matches, e.g.
/// `No such file or directory`) and formats do not depend on the cluster's locale.
#[derive(Clone, PartialEq, Eq)]
pub struct CommandLine(Vec<u8>);

impl CommandLine {
    /// Starts a command running `program`, a literal chosen by Ironcrest (never user input).
    pub fn builder(program: &'static str) -> CommandLineBuilder {
        CommandLineBuilder {
            env: Vec::new(),
            words: vec![program.as_bytes().to_vec()],
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Runs `next` only if this command succeeds (`a && b`).
    pub fn and_then(mut self, next: CommandLine) -> CommandLine {
        self.0.extend_from_slice(b" && ");
        self.0.extend_from_slice(&next.0);
        self
    }
}

impl std::fmt::Debug for CommandLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl std::fmt::Display for CommandLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

#[derive(Debug, Clone)]
pub struct CommandLineBuilder {
    env: Vec<Vec<u8>>,
    words: Vec<Vec<u8>>,
}

impl CommandLineBuilder {
    /// A literal word chosen by Ironcrest, such as a flag: `-a`, `--noheader`.
    pub fn flag(mut self, literal: &'static str) -> Self {
        self.words.push(literal.as_bytes().to_vec());
        self
    }

    /// A value, quoted as one word.
    pub fn arg(mut self, value: impl AsRef<[u8]>) -> Result<Self, QuoteError> {
        self.words.push(quote(value.as_ref())?.into_owned());
        Ok(self)
    }

    /// An option and its value as one word: `--format=<quoted value>`.
    pub fn option(
        mut self,
        name: &'static str,
        value: impl AsRef<[u8]>,
    ) -> Result<Self, QuoteError> {
        let mut word = name.as_bytes().to_vec();
        word.push(b'=');
        word.extend_from_slice(&quote(value.as_ref())?);
        self.words.push(word);
        Ok(self)
    }

    /// Operands that may begin with `-`: they follow `--`, so they are never read as options.
    pub fn operands<I, V>(mut self, values: I) -> Result<Self, QuoteError>
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        self.words.push(b"--".to_vec());
        for value in values {
            self.words.push(quote(value.as_ref())?.into_owned());
        }
        Ok(self)
    }

    /// An environment variable for this command only: `NAME=<quoted value> program …`.
    pub fn env(mut self, name: &'static str, value: impl AsRef<[u8]>) -> Result<Self, QuoteError> {
        let mut assignment = name.as_bytes().to_vec();
        assignment.push(b'=');
        assignment.extend_from_slice(&quote(value.as_ref())?);
        self.env.push(assignment);
        Ok(self)
    }

    pub fn build(self) -> CommandLine {
        let mut line = b"LC_ALL=C".to_vec();
        for word in self.env.iter().chain(&self.words) {
            line.push(b' ');
            line.extend_from_slice(word);
        }
        CommandLine(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Hostile inputs: each must reach the program as exactly these bytes.
    const HOSTILE: &[&[u8]] = &[
        b"plain",
        b"",
        b"with space",
        b"it's",
        b"'",
        b"''",
        b"\"double\"",
        b"$(touch /tmp/ironcrest-pwned)",
        b"`touch /tmp/ironcrest-pwned`",
        b"${HOME}",
        b"$HOME",
        b"a\nb",
        b"line\n; touch /tmp/ironcrest-pwned",
        b"tab\there",
        b"-rf",
        b"--help",
        b"*",
        b"?[a-z]",
        b"~",
        b"~root",
        b"a;b|c&d",
        b"a>b<c",
        b"\\backslash\\",
        b"#comment",
        b"!history",
        b"{a,b}",
        b"\xff\xfe not utf-8",
        b"caf\xc3\xa9",
        b"\xc2\xa0nbsp",
        b"\x1b[31mred",
        b"%s%n",
    ];

    /// Runs `printf '%s\0' <args>` through a real /bin/sh and returns the words it received.
    fn words_seen_by_shell(line: &CommandLine) -> Vec<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(std::ffi::OsStr::from_bytes(line.as_bytes()))
            .output()
            .expect("run /bin/sh");
        assert!(output.status.success(), "{line:?}: {output:?}");
        let mut words: Vec<Vec<u8>> = output
            .stdout
            .split(|b| *b == 0)
            .map(|w| w.to_vec())
            .collect();
        words.pop(); // after the last terminator
        words
    }

    #[test]
    fn hostile_arguments_reach_the_program_unchanged() {
        for input in HOSTILE {
            let line = CommandLine::builder("printf")
                .arg("%s\\0")
                .unwrap()
                .arg(input)
                .unwrap()
                .build();
            assert_eq!(words_seen_by_shell(&line), vec![input.to_vec()], "{line:?}");
        }
        assert!(!std::path::Path::new("/tmp/ironcrest-pwned").exists());
    }

    #[test]
    fn operands_follow_a_double_dash_and_options_join_their_value() {
        let line = CommandLine::builder("printf")
            .arg("%s\\0")
            .unwrap()
            .option("--format", "a b'c")
            .unwrap()
            .operands([b"-rf".as_slice(), b"x y"])
            .unwrap()
            .build();
        assert_eq!(
            words_seen_by_shell(&line),
            vec![
                b"--format=a b'c".to_vec(),
                b"--".to_vec(),
                b"-rf".to_vec(),
                b"x y".to_vec()
            ]
        );
    }

    #[test]
    fn environment_values_are_quoted_and_locale_is_fixed() {
        let line = CommandLine::builder("sh")
            .env("VALUE", "$(id) 'q'")
            .unwrap()
            .flag("-c")
            .arg("printf '%s\\0%s\\0' \"$VALUE\" \"$LC_ALL\"")
            .unwrap()
            .build();
        assert!(line.as_bytes().starts_with(b"LC_ALL=C VALUE="));
        assert_eq!(
            words_seen_by_shell(&line),
            vec![b"$(id) 'q'".to_vec(), b"C".to_vec()]
        );
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(quote(b"a\0b"), Err(QuoteError::Nul));
        assert!(CommandLine::builder("ls").arg(b"x\0").is_err());
        assert!(CommandLine::builder("ls").operands([b"\0"]).is_err());
    }

    #[test]
    fn and_then_runs_the_second_command_only_after_success() {
        let ok = CommandLine::builder("true").build().and_then(
            CommandLine::builder("printf")
                .arg("%s\\0")
                .unwrap()
                .arg("ran")
                .unwrap()
                .build(),
        );
        assert_eq!(words_seen_by_shell(&ok), vec![b"ran".to_vec()]);
    }
}
