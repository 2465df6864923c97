//! The shape of a command line: which words are Ironcrest's own and where values stand, as
//! recorded by the [`CommandLine`](crate::CommandLine) builder. The cluster-side guard
//! accepts a received line only if it has the shape of a line Ironcrest builds
//! ([`Allowlist`]), read by a tokenizer that refuses everything the builder never writes.

use std::fmt;

use crate::quote::{CORRELATION_ID_VARIABLE, REQUEST_ID_VARIABLE, quote_fixed};

/// What may stand at one place of a command's words.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WordShape {
    /// A word chosen by Ironcrest: exactly these bytes.
    Fixed(Vec<u8>),
    /// `--name=` and any value, one word.
    Prefixed(Vec<u8>),
    /// Any one word (an option's argument).
    Value,
    /// A value that checked its own grammar: one word not beginning with `-`.
    Checked,
    /// Any number of words (operands after `--`, a script's parameters).
    Values,
    /// Any number of `NAME=value` words (`env -- …`).
    Assignments,
    /// These words (a flag, or an option and its value), or nothing.
    Optional(Vec<WordShape>),
}

/// One simple command: the names of its environment assignments, then its words.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentShape {
    pub(crate) env: Vec<String>,
    pub(crate) words: Vec<WordShape>,
}

/// A line's commands, joined by ` && `.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shape(Vec<SegmentShape>);

impl Shape {
    pub(crate) fn new(segments: Vec<SegmentShape>) -> Self {
        Shape(segments)
    }
}

const VALUE: &[u8] = b"<value>";
const CHECKED: &[u8] = b"<checked>";
const VALUES: &[u8] = b"<value>...";
const ASSIGNMENTS: &[u8] = b"<NAME=value>...";

/// The allowlist's text form: fixed words quoted as the builder quotes them, values as
/// `<value>` markers, which are unquoted and so never confused with a fixed word.
impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = Vec::new();
        for (i, segment) in self.0.iter().enumerate() {
            if i > 0 {
                line.extend_from_slice(b" && ");
            }
            let mut words = Vec::new();
            for name in &segment.env {
                words.push([name.as_bytes(), b"=", VALUE].concat());
            }
            words.extend(segment.words.iter().map(WordShape::text));
            line.extend_from_slice(&words.join(&b' '));
        }
        f.write_str(&String::from_utf8_lossy(&line))
    }
}

impl WordShape {
    fn text(&self) -> Vec<u8> {
        match self {
            WordShape::Fixed(bytes) => quote_fixed(bytes),
            WordShape::Prefixed(prefix) => [quote_fixed(prefix).as_slice(), VALUE].concat(),
            WordShape::Value => VALUE.to_vec(),
            WordShape::Checked => CHECKED.to_vec(),
            WordShape::Values => VALUES.to_vec(),
            WordShape::Assignments => ASSIGNMENTS.to_vec(),
            WordShape::Optional(words) => {
                let inner: Vec<Vec<u8>> = words.iter().map(WordShape::text).collect();
                [b"[", inner.join(&b' ').as_slice(), b"]"].concat()
            }
        }
    }

    /// One word of an allowlist line (its `[` and `]` already taken off).
    fn parse(token: &Token) -> Result<WordShape, Refusal> {
        let marker = |m: &[u8]| token.bytes == m && token.unquoted(0..m.len());
        Ok(if marker(VALUE) {
            WordShape::Value
        } else if marker(CHECKED) {
            WordShape::Checked
        } else if marker(VALUES) {
            WordShape::Values
        } else if marker(ASSIGNMENTS) {
            WordShape::Assignments
        } else if let Some(prefix) = token.bytes.strip_suffix(VALUE)
            && token.unquoted(prefix.len()..token.bytes.len())
        {
            WordShape::Prefixed(prefix.to_vec())
        } else if token.has_unquoted(b"<>[]") {
            return Err(Refusal::new("an unknown marker in a shape"));
        } else {
            WordShape::Fixed(token.bytes.clone())
        })
    }
}

impl std::str::FromStr for Shape {
    type Err = Refusal;

    fn from_str(text: &str) -> Result<Self, Refusal> {
        let segments = tokenize(text.as_bytes(), Mode::Pattern)?;
        let mut shape = Vec::new();
        for mut tokens in segments {
            let mut segment = SegmentShape::default();
            let mut optional: Option<Vec<WordShape>> = None;
            for token in &mut tokens {
                let opens = token.bytes.first() == Some(&b'[') && token.unquoted(0..1);
                if opens {
                    token.bytes.remove(0);
                    token.quoted.remove(0);
                }
                let last = token.bytes.len().wrapping_sub(1);
                let closes = token.bytes.last() == Some(&b']') && token.unquoted(last..last + 1);
                if closes {
                    token.bytes.pop();
                    token.quoted.pop();
                }
                if segment.words.is_empty()
                    && optional.is_none()
                    && !opens
                    && let Some((name, value)) = token.assignment()
                    && value == VALUE
                {
                    segment.env.push(name.to_string());
                    continue;
                }
                let word = WordShape::parse(token)?;
                match (&mut optional, opens, closes) {
                    (None, true, true) => segment.words.push(WordShape::Optional(vec![word])),
                    (None, true, false) => optional = Some(vec![word]),
                    (None, false, false) => segment.words.push(word),
                    (Some(words), false, false) => words.push(word),
                    (Some(words), false, true) => {
                        words.push(word);
                        segment
                            .words
                            .push(WordShape::Optional(optional.take().unwrap()));
                    }
                    _ => return Err(Refusal::new("unbalanced [ ] in a shape")),
                }
            }
            if optional.is_some() {
                return Err(Refusal::new("an unclosed [ in a shape"));
            }
            shape.push(segment);
        }
        Ok(Shape(shape))
    }
}

/// Why a line is not one Ironcrest would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(String);

impl Refusal {
    fn new(reason: impl Into<String>) -> Self {
        Refusal(reason.into())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// One word as the shell will see it: its bytes, and which of them were quoted.
#[derive(Debug)]
struct Token {
    bytes: Vec<u8>,
    quoted: Vec<bool>,
}

impl Token {
    fn unquoted(&self, range: std::ops::Range<usize>) -> bool {
        self.quoted[range].iter().all(|quoted| !quoted)
    }

    fn has_unquoted(&self, bytes: &[u8]) -> bool {
        self.bytes
            .iter()
            .zip(&self.quoted)
            .any(|(b, quoted)| !quoted && bytes.contains(b))
    }

    /// `NAME=value` with `NAME=` unquoted: what the shell takes for an assignment before
    /// a command.
    fn assignment(&self) -> Option<(&str, &[u8])> {
        let (name, value) = self.variable()?;
        self.unquoted(0..name.len() + 1).then_some((name, value))
    }

    /// `NAME=value`, quoted or not: what `env` takes for an assignment.
    fn variable(&self) -> Option<(&str, &[u8])> {
        let equals = self.bytes.iter().position(|b| *b == b'=')?;
        let name = std::str::from_utf8(&self.bytes[..equals]).ok()?;
        is_variable_name(name).then(|| (name, &self.bytes[equals + 1..]))
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A received command line.
    Command,
    /// An allowlist line, where `<value>` markers stand unquoted.
    Pattern,
}

/// Bytes the builder leaves unquoted (shlex's and `quote_fixed`'s safe sets): none of them
/// means anything to a POSIX shell inside a word.
fn plain(byte: u8, mode: Mode) -> bool {
    byte.is_ascii_alphanumeric()
        || b"+-./:@]_=%,".contains(&byte)
        || (mode == Mode::Pattern && b"<>[".contains(&byte))
}

/// Splits a line into commands (at ` && `) and words, as a POSIX shell would, accepting only
/// what the builder writes: words of plain bytes, `'…'` and `"…"` (with no `$`, `` ` ``
/// or `!`, and `\` only before `"` or `\`), separated by one space. Anything else (`;`, `|`,
/// redirections, `$`, globs, newlines outside quotes, NUL, …) is refused.
fn tokenize(line: &[u8], mode: Mode) -> Result<Vec<Vec<Token>>, Refusal> {
    let describe = |byte: u8| match byte {
        b'\n' => "a newline".to_string(),
        0 => "a NUL byte".to_string(),
        b' ' => "a space".to_string(),
        b if b.is_ascii_graphic() => format!("`{}`", b as char),
        b => format!("the byte 0x{b:02x}"),
    };
    if line.contains(&0) {
        return Err(Refusal::new("a NUL byte"));
    }
    let mut segments = vec![Vec::new()];
    let mut token = Token {
        bytes: Vec::new(),
        quoted: Vec::new(),
    };
    let mut started = false;
    let mut i = 0;
    while i < line.len() {
        let byte = line[i];
        match byte {
            b' ' => {
                if !started {
                    return Err(Refusal::new("an empty word (two spaces in a row)"));
                }
                let segments_len = segments.len();
                segments[segments_len - 1].push(std::mem::replace(
                    &mut token,
                    Token {
                        bytes: Vec::new(),
                        quoted: Vec::new(),
                    },
                ));
                started = false;
                if line[i..].starts_with(b" && ") {
                    segments.push(Vec::new());
                    i += 4;
                } else {
                    i += 1;
                }
                if i == line.len() {
                    return Err(Refusal::new("a trailing space or `&&`"));
                }
                continue;
            }
            b'\'' => {
                let end = line[i + 1..]
                    .iter()
                    .position(|b| *b == b'\'')
                    .ok_or_else(|| Refusal::new("an unterminated '"))?;
                let quoted = &line[i + 1..i + 1 + end];
                token.bytes.extend_from_slice(quoted);
                token.quoted.extend(std::iter::repeat_n(true, quoted.len()));
                i += end + 2;
            }
            b'"' => {
                i += 1;
                loop {
                    let Some(&byte) = line.get(i) else {
                        return Err(Refusal::new("an unterminated \""));
                    };
                    match byte {
                        b'"' => break,
                        b'\\' if matches!(line.get(i + 1), Some(b'"' | b'\\')) => {
                            token.bytes.push(line[i + 1]);
                            i += 1;
                        }
                        b'\\' | b'$' | b'`' | b'!' => {
                            return Err(Refusal::new(format!(
                                "{} inside double quotes",
                                describe(byte)
                            )));
                        }
                        byte => token.bytes.push(byte),
                    }
                    token.quoted.push(true);
                    i += 1;
                }
                i += 1;
            }
            byte if plain(byte, mode) => {
                token.bytes.push(byte);
                token.quoted.push(false);
                i += 1;
            }
            byte => {
                return Err(Refusal::new(format!("{} outside quotes", describe(byte))));
            }
        }
        started = true;
    }
    if !started {
        return Err(Refusal::new("an empty command line"));
    }
    let segments_len = segments.len();
    segments[segments_len - 1].push(token);
    Ok(segments)
}

/// The ids a received line carried (from its first command).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineIds {
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
}

/// The shapes of every line Ironcrest sends: what the cluster-side guard lets run.
#[derive(Debug, Clone)]
pub struct Allowlist {
    shapes: Vec<Shape>,
}

/// The allowlist generated from every [`RemoteCommand`](crate::RemoteCommand) type (see the
/// `allowlist` test of `ironcrest-services`, which writes it).
const CURRENT: &str = include_str!("../allowlist.txt");

impl Allowlist {
    /// The allowlist this build of Ironcrest was made with.
    pub fn current() -> Allowlist {
        CURRENT
            .parse()
            .unwrap_or_else(|refusal| panic!("allowlist.txt: {refusal}"))
    }

    /// The text [`Allowlist::current`] reads.
    pub fn current_text() -> &'static str {
        CURRENT
    }

    /// The allowlist's text for `shapes`: one shape a line, sorted, after a header.
    pub fn text(shapes: impl IntoIterator<Item = Shape>) -> String {
        let mut lines: Vec<String> = shapes.into_iter().map(|s| s.to_string()).collect();
        lines.sort();
        lines.dedup();
        let mut text = String::from(
            "# The shapes of every command line Ironcrest runs over SSH, one a line, for\n\
             # ironcrest-guard. Generated from the RemoteCommand types; do not edit: run\n\
             # IRONCREST_WRITE_ALLOWLIST=1 cargo test -p ironcrest-services --test allowlist\n",
        );
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    /// Accepts `line` if it has one of the shapes, every command of it prefixed by
    /// `LC_ALL=C` and optionally the request's ids; returns the ids.
    pub fn check(&self, line: &[u8]) -> Result<LineIds, Refusal> {
        let segments = tokenize(line, Mode::Command)?;
        let mut ids = LineIds::default();
        let mut commands = Vec::new();
        for (i, tokens) in segments.iter().enumerate() {
            let (segment_ids, rest) = leading_assignments(tokens)?;
            if i == 0 {
                ids = segment_ids;
            }
            commands.push(rest);
        }
        let matches = |shape: &Shape| {
            shape.0.len() == commands.len()
                && shape
                    .0
                    .iter()
                    .zip(&commands)
                    .all(|(segment, tokens)| matches_segment(segment, tokens))
        };
        if self.shapes.iter().any(matches) {
            Ok(ids)
        } else {
            Err(Refusal::new(
                "the command has the shape of none of Ironcrest's commands",
            ))
        }
    }
}

impl std::str::FromStr for Allowlist {
    type Err = Refusal;

    fn from_str(text: &str) -> Result<Self, Refusal> {
        let shapes = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        Ok(Allowlist { shapes })
    }
}

/// `LC_ALL=C`, then at most the request id and the correlation id, in that order: what
/// every command begins with. Returns the ids and the remaining words.
fn leading_assignments(tokens: &[Token]) -> Result<(LineIds, &[Token]), Refusal> {
    let mut ids = LineIds::default();
    let mut rest = match tokens.split_first() {
        Some((first, rest)) if first.assignment() == Some(("LC_ALL", b"C")) => rest,
        _ => return Err(Refusal::new("the command does not begin with LC_ALL=C")),
    };
    for (name, slot) in [
        (REQUEST_ID_VARIABLE, &mut ids.request_id),
        (CORRELATION_ID_VARIABLE, &mut ids.correlation_id),
    ] {
        if let Some((first, others)) = rest.split_first()
            && let Some((assigned, value)) = first.assignment()
            && assigned == name
        {
            *slot = Some(String::from_utf8_lossy(value).into_owned());
            rest = others;
        }
    }
    Ok((ids, rest))
}

fn matches_segment(shape: &SegmentShape, tokens: &[Token]) -> bool {
    if tokens.len() < shape.env.len() {
        return false;
    }
    let (env, words) = tokens.split_at(shape.env.len());
    env.iter()
        .zip(&shape.env)
        .all(|(token, name)| token.assignment().is_some_and(|(n, _)| n == name))
        && matches_words(&shape.words, words)
}

/// Whether `tokens` fit `shapes`, where `Values` and `Assignments` take any number of
/// words: dynamic programming over (token, shape) positions, linear in the line's length.
fn matches_words(shapes: &[WordShape], tokens: &[Token]) -> bool {
    // fits[j][i]: tokens[i..] fit shapes[j..].
    let mut fits = vec![vec![false; tokens.len() + 1]; shapes.len() + 1];
    fits[shapes.len()][tokens.len()] = true;
    for j in (0..shapes.len()).rev() {
        for i in (0..=tokens.len()).rev() {
            let token = tokens.get(i);
            fits[j][i] = match &shapes[j] {
                WordShape::Values => fits[j + 1][i] || (token.is_some() && fits[j][i + 1]),
                WordShape::Assignments => {
                    fits[j + 1][i]
                        || (token.is_some_and(|t| t.variable().is_some()) && fits[j][i + 1])
                }
                WordShape::Optional(words) => {
                    fits[j + 1][i]
                        || (tokens.len() - i >= words.len()
                            && words
                                .iter()
                                .zip(&tokens[i..])
                                .all(|(shape, token)| fits_word(shape, token))
                            && fits[j + 1][i + words.len()])
                }
                one => token.is_some_and(|t| fits_word(one, t)) && fits[j + 1][i + 1],
            };
        }
    }
    fits[0][0]
}

fn fits_word(shape: &WordShape, token: &Token) -> bool {
    match shape {
        WordShape::Fixed(bytes) => token.bytes == *bytes,
        WordShape::Prefixed(prefix) => token.bytes.starts_with(prefix),
        WordShape::Value => true,
        WordShape::Checked => token.bytes.first().is_some_and(|b| *b != b'-'),
        WordShape::Values | WordShape::Assignments | WordShape::Optional(_) => {
            unreachable!("matched by matches_words")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CommandLine, RequestIds};

    fn allowlist(lines: &[&CommandLine]) -> Allowlist {
        Allowlist::text(lines.iter().map(|line| line.shape()))
            .parse()
            .unwrap()
    }

    fn ls(path: &[u8]) -> CommandLine {
        CommandLine::builder("timeout")
            .checked(&5u64)
            .word("ls")
            .option("--time-style", "+%s")
            .unwrap()
            .option_arg("-I", "x")
            .unwrap()
            .word_if(path.len() > 1, "-d")
            .option_if("--block-size", None::<&str>)
            .unwrap()
            .option_arg_if("-w", Some("80"))
            .unwrap()
            .operands([path])
            .unwrap()
            .build()
    }

    #[test]
    fn shapes_round_trip_through_their_text() {
        let script = CommandLine::builder("env")
            .env("SLURM_TIME_FORMAT", "%s")
            .unwrap()
            .assignments([("A", "1")])
            .unwrap()
            .word("sbatch")
            .build()
            .and_then(CommandLine::shell_script("printf '%s <value>' \"$1\"", ["a"]).unwrap());
        for line in [ls(b"/"), script] {
            let text = line.shape().to_string();
            let parsed: Shape = text.parse().unwrap();
            assert_eq!(parsed, line.shape(), "{text}");
        }
        assert_eq!(
            ls(b"/").shape().to_string(),
            "timeout <checked> ls --time-style=<value> -I <value> [-d] [--block-size=<value>] [-w <value>] -- <value>..."
        );
    }

    #[test]
    fn lines_of_a_shape_are_accepted_with_or_without_ids() {
        let list = allowlist(&[&ls(b"/")]);
        for path in [
            b"/".as_slice(),
            b"a b",
            b"-rf",
            b"$(id)",
            b"'\n;`x`",
            b"\xff",
        ] {
            let line = ls(path);
            assert_eq!(
                list.check(line.as_bytes()),
                Ok(LineIds::default()),
                "{line:?}"
            );
            let ids = RequestIds {
                request_id: "r-1$(id)".into(),
                correlation_id: Some("c'2".into()),
            };
            let with_ids = line.with_request_ids(&ids).unwrap();
            assert_eq!(
                list.check(with_ids.as_bytes()),
                Ok(LineIds {
                    request_id: Some("r-1$(id)".into()),
                    correlation_id: Some("c'2".into()),
                }),
                "{with_ids:?}"
            );
        }
    }

    #[test]
    fn hostile_lines_are_refused() {
        let cd = CommandLine::builder("cd").operands(["/x"]).unwrap().build();
        let list = allowlist(&[&ls(b"/"), &cd.clone().and_then(ls(b"/"))]);
        let good = String::from_utf8(ls(b"/x").as_bytes().to_vec()).unwrap();
        let refused = [
            format!("{good}; id"),
            format!("{good} | id"),
            format!("{good} & id"),
            format!("{good} && id"),
            format!("{good}&&id"),
            format!("{good} > /tmp/x"),
            format!("{good} < /etc/passwd"),
            format!("{good} $(id)"),
            format!("{good} `id`"),
            format!("{good} \"$(id)\""),
            format!("{good} \"`id`\""),
            format!("{good}\nid"),
            format!("{good}\0"),
            format!("{good}  x"),
            format!("{good} "),
            format!(" {good}"),
            format!("{good} *"),
            format!("{good} ~"),
            format!("{good} {{a,b}}"),
            format!("{good} #"),
            format!("{good} \\;"),
            "LC_ALL=C timeout 5 ls --time-style=+%s -I x -R -- /x".into(),
            "LC_ALL=C timeout -5 ls --time-style=+%s -I x -d -w 80 -- /x".into(),
            "LC_ALL=C timeout 5 ls --time-stylo=+%s -I x -d -w 80 -- /x".into(),
            "LC_ALL=C LD_PRELOAD=/tmp/x.so timeout 5 ls --time-style=+%s -I x -d -w 80 -- /x".into(),
            "LC_ALL=C IRONCREST_REQUEST_ID=1 PATH=/tmp timeout 5 ls --time-style=+%s -I x -d -w 80 -- /x"
                .into(),
            "'LC_ALL=C' timeout 5 ls --time-style=+%s -I x -d -w 80 -- /x".into(),
            "LC_ALL=POSIX timeout 5 ls --time-style=+%s -I x -d -w 80 -- /x".into(),
            "timeout 5 ls --time-style=+%s -I x -d -w 80 -- /x".into(),
            "bash -c 'id'".into(),
            "LC_ALL=C bash -c 'id'".into(),
            "LC_ALL=C cd -- /x && LC_ALL=C id".into(),
            "LC_ALL=C cd -- /x && id".into(),
            "LC_ALL=C timeout 5 ls --time-style=+%s -I x -- '/x".into(),
            "LC_ALL=C timeout 5 ls --time-style=+%s -I x -- \"/x".into(),
            "LC_ALL=C timeout 5 ls --time-style=+%s -I x -- \"\\x\"".into(),
            String::new(),
        ];
        for line in &refused {
            assert!(list.check(line.as_bytes()).is_err(), "accepted {line:?}");
        }
        // `&&` and `;` inside quotes are values, not joins.
        let quoted = "LC_ALL=C timeout 5 ls --time-style=+%s -I 'a && b' -w 80 -- 'x; id' \"it's\"";
        assert!(list.check(quoted.as_bytes()).is_ok());
        let joined = cd.and_then(ls(b"/y"));
        assert!(list.check(joined.as_bytes()).is_ok());
        // Many operands: matched in one pass, not by trying every split.
        let many = format!("{good}{}", " a".repeat(1 << 16));
        assert!(list.check(many.as_bytes()).is_ok());
    }

    #[test]
    fn assignments_take_only_variables() {
        let env = |pairs: &[(&str, &str)]| {
            CommandLine::builder("env")
                .assignments(pairs.iter().copied())
                .unwrap()
                .word("sbatch")
                .operands(["/x"])
                .unwrap()
                .build()
        };
        let list = allowlist(&[&env(&[("A", "1")])]);
        assert!(list.check(env(&[]).as_bytes()).is_ok());
        assert!(
            list.check(env(&[("A", "1"), ("B_2", "x y")]).as_bytes())
                .is_ok()
        );
        let program = "LC_ALL=C env -- A=1 bash -c id sbatch -- /x";
        assert!(list.check(program.as_bytes()).is_err());
    }

    #[test]
    fn checked_values_do_not_begin_with_a_dash() {
        let list = allowlist(&[&ls(b"/")]);
        let line = "LC_ALL=C timeout --signal=KILL ls --time-style=+%s -I x -d -w 80 -- /x";
        assert!(list.check(line.as_bytes()).is_err());
        let line = "LC_ALL=C timeout 7 ls --time-style=+%s -I x -d -w 80 -- /x";
        assert!(list.check(line.as_bytes()).is_ok());
    }
}
