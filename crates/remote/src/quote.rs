//! Quoting for POSIX shells, and the builder of command lines.

use std::borrow::Cow;

use crate::caller::RequestIds;
use crate::shape::{SegmentShape, Shape, WordShape};

/// The variables that carry a request's ids to the cluster (see [`CommandLine::with_request_ids`]).
pub const REQUEST_ID_VARIABLE: &str = "IRONCREST_REQUEST_ID";
pub const CORRELATION_ID_VARIABLE: &str = "IRONCREST_CORRELATION_ID";

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

/// Quotes one word for bash so that the result holds no control byte: runs of control
/// bytes (CR, LF, ESC, DEL, …) become `$'\xHH'`, the rest is quoted as by [`quote`]. For
/// batch scripts, which the scheduler refuses with a raw CR and clients read line by line.
fn quote_printable(word: &[u8]) -> Vec<u8> {
    if !word.iter().any(u8::is_ascii_control) {
        return quote_value(word);
    }
    let mut out = Vec::new();
    for run in word.chunk_by(|a, b| a.is_ascii_control() == b.is_ascii_control()) {
        if run[0].is_ascii_control() {
            out.extend_from_slice(b"$'");
            for byte in run {
                out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
            }
            out.push(b'\'');
        } else {
            out.extend_from_slice(&quote_value(run));
        }
    }
    out
}

/// One word for a bash script, with no raw control byte (see [`CommandLine::as_bash_script_line`]).
pub fn quote_for_bash_script(word: &[u8]) -> Result<Vec<u8>, QuoteError> {
    Ok(quote_printable(&checked_for_nul(word)?))
}

/// [`quote`] of a value already checked for NUL.
fn quote_value(word: &[u8]) -> Vec<u8> {
    quote(word)
        .expect("values are checked for NUL")
        .into_owned()
}

/// Quotes a word known to hold no NUL (a literal, or a [`Checked`] value); words of bytes no
/// shell treats specially (`--time-style=+%Y`) stay as they are, for readable command lines.
pub(crate) fn quote_fixed(word: &[u8]) -> Vec<u8> {
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"-_=+%/.:,@".contains(b);
    if !word.is_empty() && word.iter().all(plain) {
        return word.to_vec();
    }
    quote_value(word)
}

/// A piece of a word: chosen by Ironcrest, or a value from outside.
#[derive(Debug, Clone)]
enum Piece {
    Fixed(Vec<u8>),
    Value(Vec<u8>),
}

/// One shell word, as pieces quoted when the line is rendered.
#[derive(Debug, Clone)]
struct Word(Vec<Piece>);

impl Word {
    fn fixed(bytes: &[u8]) -> Self {
        Word(vec![Piece::Fixed(bytes.to_vec())])
    }

    fn value(bytes: &[u8]) -> Result<Self, QuoteError> {
        Ok(Word(vec![Piece::Value(checked_for_nul(bytes)?)]))
    }

    /// `name=<value>`, one word.
    fn assignment(name: &str, value: &[u8]) -> Result<Self, QuoteError> {
        Ok(Word(vec![
            Piece::Fixed(format!("{name}=").into_bytes()),
            Piece::Value(checked_for_nul(value)?),
        ]))
    }

    fn render(&self, printable: bool, out: &mut Vec<u8>) {
        for piece in &self.0 {
            match piece {
                Piece::Fixed(bytes) => out.extend_from_slice(&quote_fixed(bytes)),
                Piece::Value(bytes) if printable => out.extend_from_slice(&quote_printable(bytes)),
                Piece::Value(bytes) => out.extend_from_slice(&quote_value(bytes)),
            }
        }
    }
}

fn checked_for_nul(bytes: &[u8]) -> Result<Vec<u8>, QuoteError> {
    if bytes.contains(&0) {
        return Err(QuoteError::Nul);
    }
    Ok(bytes.to_vec())
}

/// A complete command line for the remote login shell, as bytes.
///
/// Every command runs with `LC_ALL=C`, so that messages (which the API matches, e.g.
/// `No such file or directory`) and formats do not depend on the cluster's locale.
#[derive(Clone)]
pub struct CommandLine {
    /// The commands joined by ` && `, kept so the line can be rendered again with a
    /// request's ids and its [`Shape`] told.
    segments: Vec<Segment>,
    /// For any POSIX shell.
    posix: Vec<u8>,
    /// For bash scripts: the same words, without a raw control byte.
    printable: Vec<u8>,
}

/// One simple command of a line: its environment assignments and words, and what kind of
/// word each one is.
#[derive(Debug, Clone)]
struct Segment {
    /// The program it runs: what names it in traces, where its arguments must not appear.
    program: &'static str,
    env: Vec<Word>,
    words: Vec<Word>,
    shape: SegmentShape,
}

impl Segment {
    fn render(&self, ids: &[Word], printable: bool, line: &mut Vec<u8>) {
        line.extend_from_slice(b"LC_ALL=C");
        for word in ids.iter().chain(&self.env).chain(&self.words) {
            line.push(b' ');
            word.render(printable, line);
        }
    }
}

impl PartialEq for CommandLine {
    fn eq(&self, other: &Self) -> bool {
        self.posix == other.posix
    }
}

impl Eq for CommandLine {}

impl CommandLine {
    /// Starts a command running `program`, a literal chosen by Ironcrest (never user input).
    pub fn builder(program: &'static str) -> CommandLineBuilder {
        CommandLineBuilder {
            program,
            ..CommandLineBuilder::default()
        }
        .word(program)
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
            program: "sh",
            ..CommandLineBuilder::default()
        };
        Ok(builder.shell_script(script, parameters)?.build())
    }

    /// The program it runs, e.g. `ls` (for `a && b`, `a`'s).
    pub fn program(&self) -> &'static str {
        self.segments.first().map_or("", |segment| segment.program)
    }

    /// The line for the remote login shell.
    pub fn as_bytes(&self) -> &[u8] {
        &self.posix
    }

    /// The line for a bash script: values with control bytes are written as `$'\xHH'`, so
    /// the script holds no raw CR, ESC, … and every value stays on its line.
    pub fn as_bash_script_line(&self) -> &[u8] {
        &self.printable
    }

    /// Runs `next` only if this command succeeds (`a && b`).
    pub fn and_then(mut self, next: CommandLine) -> CommandLine {
        self.segments.extend(next.segments);
        Self::rendered(self.segments, &[])
    }

    /// The same line with the request's ids in the environment of each of its commands
    /// (`LC_ALL=C IRONCREST_REQUEST_ID=<id> [IRONCREST_CORRELATION_ID=<id>] program …`), so
    /// the cluster's logs and processes can be joined with Ironcrest's. sshd's `SetEnv` is
    /// not used: sshd drops it unless configured to accept it.
    pub fn with_request_ids(&self, ids: &RequestIds) -> Result<CommandLine, QuoteError> {
        let mut assignments = vec![Word::assignment(
            REQUEST_ID_VARIABLE,
            ids.request_id.as_bytes(),
        )?];
        if let Some(correlation_id) = &ids.correlation_id {
            assignments.push(Word::assignment(
                CORRELATION_ID_VARIABLE,
                correlation_id.as_bytes(),
            )?);
        }
        Ok(Self::rendered(self.segments.clone(), &assignments))
    }

    /// What kind of word stands where: the line with its values left out.
    pub fn shape(&self) -> Shape {
        Shape::new(self.segments.iter().map(|s| s.shape.clone()).collect())
    }

    fn rendered(segments: Vec<Segment>, ids: &[Word]) -> CommandLine {
        let render = |printable: bool| {
            let mut line = Vec::new();
            for (i, segment) in segments.iter().enumerate() {
                if i > 0 {
                    line.extend_from_slice(b" && ");
                }
                segment.render(ids, printable, &mut line);
            }
            line
        };
        CommandLine {
            posix: render(false),
            printable: render(true),
            segments,
        }
    }
}

impl std::fmt::Debug for CommandLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.posix))
    }
}

impl std::fmt::Display for CommandLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.posix))
    }
}

#[derive(Debug, Clone, Default)]
pub struct CommandLineBuilder {
    program: &'static str,
    env: Vec<Word>,
    words: Vec<Word>,
    shape: SegmentShape,
}

impl CommandLineBuilder {
    /// A fixed word chosen by Ironcrest, never user input: a flag (`-a`, `--noheader`), a
    /// subcommand, a format or a script. Quoted like any other word.
    pub fn word(mut self, literal: &'static str) -> Self {
        self.words.push(Word::fixed(literal.as_bytes()));
        self.shape
            .words
            .push(WordShape::Fixed(literal.as_bytes().to_vec()));
        self
    }

    /// [`word`](Self::word) if `present`. The line's [`Shape`] has the word as optional
    /// either way, so lines with and without it are one shape.
    pub fn word_if(mut self, present: bool, literal: &'static str) -> Self {
        if present {
            self.words.push(Word::fixed(literal.as_bytes()));
        }
        let word = WordShape::Fixed(literal.as_bytes().to_vec());
        self.shape.words.push(WordShape::Optional(vec![word]));
        self
    }

    /// [`option`](Self::option) if there is a value; optional in the shape either way.
    pub fn option_if(
        mut self,
        name: &'static str,
        value: Option<impl AsRef<[u8]>>,
    ) -> Result<Self, QuoteError> {
        if let Some(value) = value {
            self.words.push(Word::assignment(name, value.as_ref())?);
        }
        let word = WordShape::Prefixed(format!("{name}=").into_bytes());
        self.shape.words.push(WordShape::Optional(vec![word]));
        Ok(self)
    }

    /// [`option_arg`](Self::option_arg) if there is a value; optional in the shape either way.
    pub fn option_arg_if(
        mut self,
        flag: &'static str,
        value: Option<impl AsRef<[u8]>>,
    ) -> Result<Self, QuoteError> {
        if let Some(value) = value {
            self.words.push(Word::fixed(flag.as_bytes()));
            self.words.push(Word::value(value.as_ref())?);
        }
        let words = vec![WordShape::Fixed(flag.as_bytes().to_vec()), WordShape::Value];
        self.shape.words.push(WordShape::Optional(words));
        Ok(self)
    }

    /// A value whose type checked it against its own grammar, so it may stand where a tool
    /// parses options (a chmod mode, a job id, a number).
    pub fn checked(mut self, value: &impl Checked) -> Self {
        self.words.push(Word::fixed(&value.checked_word()));
        self.shape.words.push(WordShape::Checked);
        self
    }

    /// An option and its value as one word: `--format=<quoted value>`. The value can never
    /// be read as an option of its own, whatever it begins with.
    pub fn option(
        mut self,
        name: &'static str,
        value: impl AsRef<[u8]>,
    ) -> Result<Self, QuoteError> {
        self.words.push(Word::assignment(name, value.as_ref())?);
        self.shape
            .words
            .push(WordShape::Prefixed(format!("{name}=").into_bytes()));
        Ok(self)
    }

    /// A short option and its argument as two words: `-f <quoted value>`. The option
    /// parser takes the next word as the argument whatever it begins with.
    pub fn option_arg(
        mut self,
        flag: &'static str,
        value: impl AsRef<[u8]>,
    ) -> Result<Self, QuoteError> {
        self.words.push(Word::fixed(flag.as_bytes()));
        self.words.push(Word::value(value.as_ref())?);
        let shapes = [WordShape::Fixed(flag.as_bytes().to_vec()), WordShape::Value];
        self.shape.words.extend(shapes);
        Ok(self)
    }

    /// Operands that may begin with `-`: they follow `--`, so they are never read as options.
    pub fn operands<I, V>(mut self, values: I) -> Result<Self, QuoteError>
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        self = self.word("--");
        for value in values {
            self.words.push(Word::value(value.as_ref())?);
        }
        self.shape.words.push(WordShape::Values);
        Ok(self)
    }

    /// `-- NAME=<value> …` for `env`: each assignment one quoted word after `--`, so `env`
    /// takes none of them for an option or for the program to run. `name` is a variable
    /// name (`[A-Za-z_][A-Za-z0-9_]*`), checked by the caller.
    pub fn assignments<I, N, V>(mut self, assignments: I) -> Result<Self, QuoteError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        self = self.word("--");
        for (name, value) in assignments {
            let mut word = name.as_ref().as_bytes().to_vec();
            word.push(b'=');
            word.extend_from_slice(value.as_ref());
            self.words.push(Word::value(&word)?);
        }
        self.shape.words.push(WordShape::Assignments);
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
        for fixed in ["sh", "-c", script, "sh"] {
            self = self.word(fixed);
        }
        for value in parameters {
            self.words.push(Word::value(value.as_ref())?);
        }
        self.shape.words.push(WordShape::Values);
        Ok(self)
    }

    /// An environment variable for this command only: `NAME=<quoted value> program …`.
    pub fn env(mut self, name: &'static str, value: impl AsRef<[u8]>) -> Result<Self, QuoteError> {
        self.env.push(Word::assignment(name, value.as_ref())?);
        self.shape.env.push(name.to_string());
        Ok(self)
    }

    pub fn build(self) -> CommandLine {
        let segment = Segment {
            program: self.program,
            env: self.env,
            words: self.words,
            shape: self.shape,
        };
        CommandLine::rendered(vec![segment], &[])
    }
}

/// A bare command line is a command whose output is its result (what the SSH pool's
/// `execute` runs, e.g. the health checker's probes).
impl crate::RemoteCommand for CommandLine {
    type Parsed = crate::Output;
    type Error = std::convert::Infallible;

    fn command_line(&self) -> CommandLine {
        self.clone()
    }

    fn parse(&self, output: crate::Output) -> Result<crate::Output, Self::Error> {
        Ok(output)
    }

    /// None of its own: a bare line is any builder's, and whoever builds one lists its
    /// shapes (the health probes theirs, in services' `remote_commands`).
    fn examples() -> Vec<Self> {
        Vec::new()
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
    fn a_line_is_named_by_its_program_alone() {
        let ls = CommandLine::builder("ls")
            .operands([b"/home/secret name".as_slice()])
            .unwrap()
            .build();
        assert_eq!(ls.program(), "ls");
        let script = CommandLine::shell_script("cat -- \"$1\"", ["x"]).unwrap();
        assert_eq!(script.program(), "sh");
        assert_eq!(ls.and_then(script).program(), "ls");
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

    #[test]
    fn bash_script_lines_hold_no_control_byte_and_keep_every_value() {
        let mut values: Vec<Vec<u8>> = HOSTILE.iter().map(|v| v.to_vec()).collect();
        values.extend((1u8..32).chain([127]).map(|c| vec![b'a', c, b'b']));
        values.push(b"\r\n\r\n".to_vec());
        values.push(b"'\r'\x1b\x7f\xf0\x9f\x9a\x80".to_vec());
        let line = CommandLine::shell_script(PRINT_WORDS, &values).unwrap();
        let script = line.as_bash_script_line();
        assert!(!script.iter().any(u8::is_ascii_control), "{line:?}");
        use std::os::unix::ffi::OsStrExt;
        let output = Command::new("bash")
            .arg("-c")
            .arg(std::ffi::OsStr::from_bytes(script))
            .output()
            .expect("run bash");
        assert!(output.status.success(), "{output:?}");
        let mut words: Vec<Vec<u8>> = output
            .stdout
            .split(|b| *b == 0)
            .map(<[u8]>::to_vec)
            .collect();
        words.pop();
        assert_eq!(words, values);
        for value in &values {
            let word = quote_for_bash_script(value).unwrap();
            assert!(!word.iter().any(u8::is_ascii_control));
        }
        assert_eq!(quote_for_bash_script(b"a\0"), Err(QuoteError::Nul));
    }
}
