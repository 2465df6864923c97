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

/// A value with a grammar of its own (digits, a chmod mode, an owner name, …), checked when
/// it was made. Only such values may be a bare word before `--`
/// ([`CommandLineBuilder::checked`]); everything else is an option value or an operand.
pub trait Checked {
    /// The value as the tool should receive it; never contains NUL.
    fn checked_word(&self) -> Cow<'_, [u8]>;
}

impl Checked for u64 {
    fn checked_word(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.to_string().into_bytes())
    }
}

fn quote_literal(literal: &'static str) -> Vec<u8> {
    quote_literal_bytes(literal.as_bytes())
}

/// Quotes a word known to hold no NUL (a literal, or a [`Checked`] value); words of bytes no
/// shell treats specially (`--time-style=+%Y`) stay as they are, for readable command lines.
fn quote_literal_bytes(word: &[u8]) -> Vec<u8> {
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"-_=+%/.:,@".contains(b);
    if !word.is_empty() && word.iter().all(plain) {
        return word.to_vec();
    }
    quote(word)
        .expect("fixed words and checked values hold no NUL")
        .into_owned()
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
            words: vec![quote_literal(program)],
        }
    }

    /// `sh -c <script> sh <parameters…>` on its own (see [`CommandLineBuilder::shell_script`]).
    pub fn shell_script<I, V>(
        script: &'static str,
        parameters: I,
    ) -> Result<CommandLine, QuoteError>
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        let builder = CommandLineBuilder {
            env: Vec::new(),
            words: Vec::new(),
        };
        Ok(builder.shell_script(script, parameters)?.build())
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
    /// A fixed word chosen by Ironcrest, never user input: a flag (`-a`, `--noheader`), a
    /// subcommand, a format or a script. Quoted like any other word.
    pub fn word(mut self, literal: &'static str) -> Self {
        self.words.push(quote_literal(literal));
        self
    }

    /// A value whose type checked it against its own grammar, so it may stand where a tool
    /// parses options (a chmod mode, a job id, a number).
    pub fn checked(mut self, value: &impl Checked) -> Self {
        self.words.push(quote_literal_bytes(&value.checked_word()));
        self
    }

    /// An option and its value as one word: `--format=<quoted value>`. The value can never
    /// be read as an option of its own, whatever it begins with.
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

    /// A short option and its argument as two words: `-f <quoted value>`. The option
    /// parser takes the next word as the argument whatever it begins with.
    pub fn option_arg(
        mut self,
        flag: &'static str,
        value: impl AsRef<[u8]>,
    ) -> Result<Self, QuoteError> {
        self.words.push(quote_literal(flag));
        self.words.push(quote(value.as_ref())?.into_owned());
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

    /// `sh -c <script> sh <parameters…>`: the values become the fixed script's `$1`, `$2`, …,
    /// which no option parser ever sees.
    pub fn shell_script<I, V>(
        mut self,
        script: &'static str,
        parameters: I,
    ) -> Result<Self, QuoteError>
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        self.words.push(b"sh".to_vec());
        self.words.push(b"-c".to_vec());
        self.words.push(quote_literal(script));
        self.words.push(b"sh".to_vec());
        for value in parameters {
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

    /// Prints each parameter NUL-terminated: what `printf '%s\0' "$@"` receives.
    const PRINT_WORDS: &str = r#"printf '%s\0' "$@""#;

    #[test]
    fn hostile_arguments_reach_the_program_unchanged() {
        for input in HOSTILE {
            let line = CommandLine::shell_script(PRINT_WORDS, [input]).unwrap();
            assert_eq!(words_seen_by_shell(&line), vec![input.to_vec()], "{line:?}");
        }
        assert!(!std::path::Path::new("/tmp/ironcrest-pwned").exists());
    }

    #[test]
    fn each_kind_of_word_keeps_its_place() {
        struct Digits;
        impl Checked for Digits {
            fn checked_word(&self) -> Cow<'_, [u8]> {
                Cow::Borrowed(b"42")
            }
        }
        let line = CommandLine::builder("printf")
            .word("%s\\0")
            .checked(&Digits)
            .checked(&7u64)
            .option("--format", "a b'c")
            .unwrap()
            .option_arg("-f", "-rf")
            .unwrap()
            .operands([b"-rf".as_slice(), b"x y"])
            .unwrap()
            .build();
        assert_eq!(
            words_seen_by_shell(&line),
            vec![
                b"42".to_vec(),
                b"7".to_vec(),
                b"--format=a b'c".to_vec(),
                b"-f".to_vec(),
                b"-rf".to_vec(),
                b"--".to_vec(),
                b"-rf".to_vec(),
                b"x y".to_vec()
            ]
        );
    }

    #[test]
    fn script_parameters_follow_a_fixed_script() {
        let line = CommandLine::builder("timeout")
            .checked(&5u64)
            .shell_script(PRINT_WORDS, [b"-c".as_slice(), b"$(id)"])
            .unwrap()
            .build();
        assert!(line.to_string().starts_with("LC_ALL=C timeout 5 sh -c "));
        assert_eq!(
            words_seen_by_shell(&line),
            vec![b"-c".to_vec(), b"$(id)".to_vec()]
        );
    }

    #[test]
    fn environment_values_are_quoted_and_locale_is_fixed() {
        let line = CommandLine::builder("sh")
            .env("VALUE", "$(id) 'q'")
            .unwrap()
            .word("-c")
            .word("printf '%s\\0%s\\0' \"$VALUE\" \"$LC_ALL\"")
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
        assert!(CommandLine::builder("ls").option_arg("-f", b"x\0").is_err());
        assert!(CommandLine::builder("ls").operands([b"\0"]).is_err());
        assert!(CommandLine::shell_script(PRINT_WORDS, [b"\0"]).is_err());
    }

    #[test]
    fn and_then_runs_the_second_command_only_after_success() {
        let ok = CommandLine::builder("true")
            .build()
            .and_then(CommandLine::shell_script(PRINT_WORDS, ["ran"]).unwrap());
        assert_eq!(words_seen_by_shell(&ok), vec![b"ran".to_vec()]);
    }
}
