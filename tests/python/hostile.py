"""The hostile-value table: one generated list of values, each tagged with the kinds of
request field it is fed into and whether it is legal there.

- LEGAL: the request must succeed and the value must round-trip byte-exact (on disk, in the
  job's environment, in the API's JSON output).
- ILLEGAL: the request must get a 4xx whose error body names the field (`message`, or
  `data.fields[].name`) or quotes the value.
- EITHER: the value is defensible both ways (a GNU-only chmod spelling, a control character
  in a job name): accepted means exact round-trip, refused means a 4xx naming the field.

Every value is also checked for "no 5xx". Shell-ish payloads `touch` a marker whose name is
unique to this run (`ironcrest-pwned-<run>-<n>`): an absolute one under /tmp where the field
may hold a `/`, a relative one (created in whatever directory the injected command runs in)
where the value is a single file name. `markers_found()` looks for all of them.

test_hostile_values.py iterates over `cases(kind)`; nothing else defines values.
"""

from __future__ import annotations

import itertools
import os
import uuid
from dataclasses import dataclass

RUN = uuid.uuid4().hex[:8]
MARKER_PREFIX = f"ironcrest-pwned-{RUN}-"
MARKER_DIR = "/tmp"

# Kinds: what request field a value is fed into.
FILE_NAME = "file_name"  # last path component: mkdir, symlink, chmod/chown target, every read op, rm, compress, extract
PATH_COMPONENT = "path_component"  # a middle component: mkdir -p, recursive ls, upload target directory
UPLOAD_FILENAME = "upload_filename"  # multipart `filename` of ops/upload
CHMOD_MODE = "chmod_mode"
OWNER = "owner"  # ops/chown `owner` (group left empty)
GROUP = "group"  # ops/chown `group` (owner left empty)
JOB_NAME = "job_name"
JOB_FILTER = "job_filter"  # GET /compute/{s}/jobs?name=
ENV_KEY = "env_key"
ENV_VALUE = "env_value"
WORKDIR = "workdir"  # last component of a job's workingDirectory (and of its scriptPath's directory)

KINDS = (
    FILE_NAME, PATH_COMPONENT, UPLOAD_FILENAME, CHMOD_MODE, OWNER, GROUP,
    JOB_NAME, JOB_FILTER, ENV_KEY, ENV_VALUE, WORKDIR,
)

LEGAL, ILLEGAL, EITHER = "legal", "illegal", "either"


@dataclass(frozen=True)
class Hostile:
    id: str
    value: str | bytes
    kinds: tuple[str, ...]
    expect: str
    why: str = ""
    transfer: tuple[str, ...] = ()  # transfer-job operations this value goes through (a subset)

    @property
    def raw(self) -> bytes:
        return self.value if isinstance(self.value, bytes) else self.value.encode()

    @property
    def is_text(self) -> bool:
        return isinstance(self.value, str)

    def __repr__(self) -> str:  # short, for assertion messages
        return f"<{self.id} {self.value!r} {self.expect}>"


TABLE: list[Hostile] = []
MARKERS: list[str] = []
_marker_numbers = itertools.count()


def marker(absolute: bool = True) -> str:
    """A fresh marker file name (absolute under /tmp, or relative to wherever it runs)."""
    name = f"{MARKER_PREFIX}{next(_marker_numbers)}"
    MARKERS.append(name)
    return f"{MARKER_DIR}/{name}" if absolute else name


def markers_found(roots=("/tmp", "/home/fireuser", "/root", "/")) -> list[str]:
    """Paths of every marker file of this run under `roots` (recursive, except `/`)."""
    found = []
    for root in roots:
        if root == "/":
            found += [f"/{n}" for n in os.listdir("/") if n.startswith(MARKER_PREFIX)]
            continue
        for dirpath, _dirnames, filenames in os.walk(root):
            found += [os.path.join(dirpath, n) for n in filenames if n.startswith(MARKER_PREFIX)]
    return sorted(set(found))


def _add(id_, value, kinds, expect, why="", transfer=()):
    if any(h.id == id_ for h in TABLE):
        raise AssertionError(f"duplicate id {id_}")
    TABLE.append(Hostile(id_, value, tuple(kinds), expect, why, transfer))


def cases(kind: str, *, expect: str | None = None, text_only: bool = False) -> list[Hostile]:
    return [
        h for h in TABLE
        if kind in h.kinds
        and (expect is None or h.expect == expect)
        and (not text_only or h.is_text)
    ]


# --------------------------------------------------------------------------------------
# Names: single path components (file name, middle path component, upload filename,
# working directory). Legal unless noted; the transfer subset is flagged.
# --------------------------------------------------------------------------------------

NAME_KINDS = (FILE_NAME, PATH_COMPONENT, UPLOAD_FILENAME)
ALL_NAME_KINDS = NAME_KINDS + (WORKDIR,)
_CTRL_NAMES = {0x09: "tab", 0x0A: "lf", 0x0D: "cr", 0x1B: "esc", 0x7F: "del"}
# Working directories: a representative subset (each one is a held job).
_WORKDIR_IDS = {
    "name-ctl-lf", "name-ctl-cr", "name-ctl-tab", "name-ctl-esc", "name-ctl-01", "name-quote1",
    "name-quote2", "name-backtick", "name-bs1", "name-dollar-paren", "name-dash-rf", "name-space-lead",
    "name-emoji", "name-percent-slurm", "name-comma", "name-255-ascii", "name-amp-html",
}
# Transfer jobs: Slurm here starts about one batch job every 3 s, so a representative subset
# of names, each through some of the five transfer operations (every op gets 6-8 names).
_ALL_OPS = ("cp", "mv", "rm", "compress", "extract")
_TRANSFER_PLAN = {
    "name-ctl-cr": ("cp", "rm", "extract"),
    "name-ctl-lf": ("mv", "rm", "compress"),
    "name-ctl-tab": ("cp", "compress"),
    "name-ctl-esc": ("mv", "extract"),
    "name-quote1": _ALL_OPS,
    "name-quote2": ("cp", "compress"),
    "name-bs1": _ALL_OPS,
    "name-emoji": ("mv", "rm", "extract"),
    "name-dash-rf": _ALL_OPS,
    "name-dollar-paren": ("cp", "rm", "compress"),
    "name-tar-compress-program": ("compress", "extract"),
    "name-nul": _ALL_OPS,  # refused up front: no job
}


def _name(id_, value, expect=LEGAL, why="", kinds=NAME_KINDS):
    _add(id_, value, kinds, expect, why, transfer=_TRANSFER_PLAN.get(id_, ()))
    if id_ in _WORKDIR_IDS:
        # The working directory comes back through squeue/sacct listings, one line per job:
        # a control character in it may be refused (naming the field) instead.
        ctrl = any(ord(c) < 32 or ord(c) == 127 for c in value)
        why = "control character: Slurm's listings cannot carry it" if ctrl else why
        _add("wd-" + id_.removeprefix("name-"), value, (WORKDIR,), EITHER if ctrl else expect, why)


def _generate_names():
    rel = lambda: marker(absolute=False)  # noqa: E731
    # Every ASCII control character except NUL, embedded; CR/LF/TAB/ESC/DEL also leading,
    # trailing and alone.
    for c in list(range(1, 32)) + [127]:
        label = _CTRL_NAMES.get(c, f"{c:02x}")
        _name(f"name-ctl-{label}", f"a{chr(c)}b")
    for c, label in _CTRL_NAMES.items():
        _name(f"name-ctl-{label}-lead", f"{chr(c)}lead")
        _name(f"name-ctl-{label}-trail", f"trail{chr(c)}")
        _name(f"name-ctl-{label}-only", chr(c))
    _name("name-crlf", "a\r\nb")
    _name("name-crlf-trail", "crlf\r\n")
    _name("name-lf-injected-cmd", f"x\ntouch {rel()}\n")
    _name("name-ansi-colour", "\x1b[31mred\x1b[0m")
    # Quotes and backslashes.
    _name("name-quote1", "it's")
    _name("name-quote1-only", "'")
    _name("name-quote1-pair", "''")
    _name("name-quote2", 'say "hi"')
    _name("name-quote2-only", '"')
    _name("name-backtick", "a`b`c")
    _name("name-quotes-all", "'\"`$\\")
    _name("name-bs1", "a\\b")
    _name("name-bs2", "a\\\\b")
    _name("name-bs-only1", "\\")
    _name("name-bs-only2", "\\\\")
    _name("name-bs-only3", "\\\\\\")
    _name("name-bs-trail", "trail\\")
    _name("name-bs-n", "a\\nb")
    _name("name-bs-quote", "a\\'b")
    _name("name-bs-dquote", 'a\\"b')
    _name("name-bs-x41", "\\x41")
    # Shell metacharacters, alone and embedded.
    for ch, label in [("$", "dollar"), ("(", "lparen"), (")", "rparen"), (";", "semi"),
                      ("|", "pipe"), ("&", "amp"), (">", "gt"), ("<", "lt"), ("*", "star"),
                      ("?", "qmark"), ("[", "lbracket"), ("]", "rbracket"), ("{", "lbrace"),
                      ("}", "rbrace"), ("~", "tilde"), ("!", "bang"), ("#", "hash"),
                      ("=", "equals"), (":", "colon"), ("%", "percent"), ("^", "caret"), ("@", "at")]:
        _name(f"name-meta-{label}", f"a{ch}b")
        _name("name-glob-star" if ch == "*" else f"name-meta-{label}-only", ch)
    _name("name-comma", "a,b")
    _name("name-glob-class", "[a-z]*")
    _name("name-brace", "{a,b}")
    _name("name-tilde-user", "~root")
    _name("name-var", "$HOME")
    _name("name-var-brace", "${HOME}")
    _name("name-pid", "$$")
    _name("name-hash-comment", "a #b")
    _name("name-history", "!!")
    _name("name-dollar-paren", f"$(touch {rel()})")
    _name("name-backtick-cmd", f"`touch {rel()}`")
    _name("name-semi-cmd", f";touch {rel()}")
    _name("name-pipe-cmd", f"|touch {rel()}")
    _name("name-amp-cmd", f"&touch {rel()}")
    _name("name-andand-cmd", f"x&&touch {rel()}")
    _name("name-oror-cmd", f"x||touch {rel()}")
    _name("name-redirect", f">{rel()}")
    _name("name-quote1-break", f"';touch {rel()};'")
    _name("name-quote2-break", f"\";touch {rel()};\"")
    _name("name-bs-quote-break", f"\\';touch {rel()};#")
    _name("name-ansi-c-quote", f"$'\\ntouch {rel()}'")
    _name("name-dd-of", f"x' of='{rel()}")
    _name("name-pct-newline", f"%0atouch {rel()}")
    # Leading dashes (option injection into mkdir/ln/chmod/head/tar/...).
    _name("name-dash-rf", "-rf")
    _name("name-dash-only", "-")
    _name("name-dashdash-only", "--")
    _name("name-dash-help", "--help")
    _name("name-dash-version", "--version")
    _name("name-dash-p", "-p")
    _name("name-dash-n", "-n")
    _name("name-dash-e", "-e")
    _name("name-dash-reference", "--reference=.bashrc")
    _name("name-dash-rf-space", "-rf --no-preserve-root")
    _name("name-dash-bytes", "--bytes=1")
    _name("name-tar-compress-program", f"--use-compress-program=touch {rel()}")
    _name("name-tar-checkpoint", f"--checkpoint=1 --checkpoint-action=exec=touch {rel()}")
    _name("name-tar-to-command", f"--to-command=touch {rel()}")
    # Spaces.
    _name("name-space-only", " ")
    _name("name-space-two", "  ")
    _name("name-space-lead", " lead")
    _name("name-space-trail", "trail ")
    _name("name-space-inner", "a b")
    _name("name-space-double", "a  b")
    _name("name-space-both", "  both  ")
    _name("name-nbsp", "a\u00a0b")
    # Things parsers of ls/sha256sum output trip on.
    _name("name-arrow", "a -> b")
    _name("name-ls-total", "total 8")
    _name("name-ls-line", "-rw-r--r-- 1 root root 0 2024-01-01T00:00:00 x")
    _name("name-colon-trail", "dir:")
    # Multi-byte UTF-8 and Unicode oddities (no normalisation allowed).
    _name("name-e-acute", "caf\u00e9")
    _name("name-e-decomposed", "cafe\u0301")
    _name("name-cjk", "日本語")
    _name("name-emoji", "🎉")
    _name("name-emoji-inner", "a🎉b")
    _name("name-zwj", "a\u200db")
    _name("name-rtl", "\u202eexe.txt")
    _name("name-bom", "\ufeffbom")
    _name("name-line-sep", "a\u2028b")
    _name("name-nel", "a\u0085b")
    # Template and escaping engines (Jinja autoescape, Slurm filename patterns).
    _name("name-jinja", "{{7*7}}")
    _name("name-jinja-block", "{% raw %}")
    _name("name-amp-html", "&amp;<b>")
    _name("name-percent-slurm", "%j%u%x%%")
    _name("name-pct22", "%22")
    _name("name-pct0a", "a%0Ab")
    _name("name-pct2f", "a%2Fb")
    _name("name-pct00", "%00")
    # Dots that are ordinary names.
    _name("name-dots3", "...")
    _name("name-dot-hidden", ".hidden")
    _name("name-dot-trail", "trail.")
    # Lengths: 255 bytes is the largest legal name (ASCII, 2-byte, 3-byte, 4-byte UTF-8).
    _name("name-255-ascii", "a" * 255)
    _name("name-255-2byte", "\u00e9" * 127 + "a")
    _name("name-255-3byte", "日" * 85)
    _name("name-255-4byte", "🎉" * 63 + "abc")
    too_long = "ENAMETOOLONG: more than 255 bytes in one component"
    _name("name-256-ascii", "a" * 256, ILLEGAL, too_long)
    _name("name-256-2byte", "\u00e9" * 128, ILLEGAL, too_long)
    _name("name-256-3byte", "日" * 85 + "a", ILLEGAL, too_long)
    _name("name-256-4byte", "🎉" * 64, ILLEGAL, too_long)
    # NUL can be in no file name.
    _name("name-nul", "a\x00b", ILLEGAL, "NUL")
    _name("name-nul-only", "\x00", ILLEGAL, "NUL")
    _name("name-nul-trail", "x\x00", ILLEGAL, "NUL")
    # Not single names: illegal as an upload filename and as the name mkdir/ln create
    # (read ops would act on the directory itself, so those kinds leave them out).
    not_a_name = "not a single file name"
    for id_, value in [("name-empty", ""), ("name-dot", "."), ("name-dotdot", ".."),
                       ("name-slash", "a/b"), ("name-slash-only", "/"), ("name-escape", "../escape"),
                       ("name-slash-trail", "x/")]:
        _add(id_, value, (UPLOAD_FILENAME,), ILLEGAL, not_a_name)
    _add("mkname-dot", ".", (FILE_NAME,), ILLEGAL, "mkdir/ln of '.' must not succeed")
    _add("mkname-dotdot", "..", (FILE_NAME,), ILLEGAL, "mkdir/ln of '..' must not succeed")
    # Names that are not UTF-8 (query-string paths and disk only; JSON cannot carry them).
    for id_, value in [("name-bytes-ff", b"\xff"), ("name-bytes-latin1", b"caf\xe9"),
                       ("name-bytes-truncated", b"a\xc3"), ("name-bytes-surrogate", b"\xed\xa0\x80x"),
                       ("name-bytes-overlong", b"\xc0\xaf")]:
        _add(id_, value, (FILE_NAME,), LEGAL, "not UTF-8")


def _generate_working_dirs():
    _add("wd-nul", "a\x00b", (WORKDIR,), ILLEGAL, "NUL")
    _add("wd-relative", "relative/dir", (WORKDIR,), ILLEGAL, "not absolute (used as is, not under the base)")
    _add("wd-empty", "", (WORKDIR,), ILLEGAL, "empty working directory (used as is)")


# --------------------------------------------------------------------------------------
# chmod modes.
# --------------------------------------------------------------------------------------

def _generate_modes():
    for mode in ["0", "7", "00", "000", "644", "0644", "755", "0755", "700", "1777", "2755",
                 "4755", "6755", "7777", "0000"]:
        _add(f"mode-octal-{mode}", mode, (CHMOD_MODE,), LEGAL)
    for mode in ["07777", "00007777"]:
        _add(f"mode-octal-{mode}", mode, (CHMOD_MODE,), EITHER, "more than 4 digits, value <= 07777")
    for i, mode in enumerate(["u+x", "go-w", "a=r", "u=rwx,g=rx,o=", "+t", "g+s", "o+X", "u=g",
                              "-x", "-r", "-rwx", "-w", "-s", "-t", "-X", "-u", "+x", "=",
                              "ugoa+rwxXst", "a-rwx,u+r", "o=u", "u-s", "g=u,o=g"]):
        _add(f"mode-sym-{i:02d}-{mode}", mode, (CHMOD_MODE,), LEGAL)
    gnu_only = "GNU chmod accepts it (no-op or octal after an operator); POSIX grammar does not"
    for i, mode in enumerate(["+755", "=755", "-", "+", "--"]):
        _add(f"mode-gnu-{i}", mode, (CHMOD_MODE,), EITHER, gnu_only)
    bad = [("ref-shadow", "--reference=/etc/shadow"), ("recursive", "-R"), ("recursive-long", "--recursive"),
           ("help", "--help"), ("version", "--version"), ("verbose", "-v"), ("empty", ""), ("8", "8"),
           ("778", "778"), ("77777", "77777"), ("17777", "17777"), ("python-octal", "0o755"),
           ("hex", "0x1ed"), ("u-q", "u+q"), ("rwx", "rwx"), ("lead-space", " 755"),
           ("trail-space", "755 "), ("trail-lf", "755\n"), ("trail-comma", "a+r,"),
           ("double-comma", "u+x,,g+w"), ("u-octal", "u=644"), ("space-list", "u+x g+w"),
           ("two-args", "755 /etc/passwd"), ("nul", "7\x00"), ("emoji", "🎉"),
           ("neg", "-755"), ("quote", "'755'")]
    for label, mode in bad:
        _add(f"mode-bad-{label}", mode, (CHMOD_MODE,), ILLEGAL)
    for label, template in [("dollar", "$(touch {m})"), ("backtick", "`touch {m}`"),
                            ("semi", "755;touch {m}"), ("quote-break", "755' -- /dev/null; touch {m}; '"),
                            ("newline", "755\ntouch {m}"), ("and", "755&&touch {m}"),
                            ("pipe", "755|touch {m}"), ("redirect", ">{m}")]:
        _add(f"mode-inject-{label}", template.format(m=marker()), (CHMOD_MODE,), ILLEGAL)


# --------------------------------------------------------------------------------------
# chown owners and groups (fireuser uid 1001, its group fireuser 1002, hpcusers 1001).
# --------------------------------------------------------------------------------------

def _generate_owners():
    import grp
    import pwd

    user = pwd.getpwnam("fireuser")
    hpc = grp.getgrnam("hpcusers")
    primary = grp.getgrgid(user.pw_gid)
    _add("owner-name", "fireuser", (OWNER,), LEGAL)
    _add("owner-uid", str(user.pw_uid), (OWNER,), LEGAL)
    _add("group-hpcusers", "hpcusers", (GROUP,), LEGAL)
    _add("group-hpcusers-gid", str(hpc.gr_gid), (GROUP,), LEGAL)
    _add("group-primary", primary.gr_name, (GROUP,), LEGAL)
    _add("group-primary-gid", str(primary.gr_gid), (GROUP,), LEGAL)
    bad = [("dash", "-fireuser"), ("help", "--help"), ("reference", "--reference=/etc/shadow"),
           ("colon", "a:b"), ("colon-real", "fireuser:hpcusers"), ("dot-legacy", "fireuser.hpcusers"),
           ("dot-only", "."), ("colon-only", ":"), ("space", "a b"), ("space-lead", " fireuser"),
           ("space-trail", "fireuser "), ("lf-trail", "fireuser\n"), ("tab", "fire\tuser"),
           ("dollar-id", "$(id)"), ("quote", "fire'user"), ("dquote", 'fire"user'),
           ("nul", "fireuser\x00"), ("nonexistent", "nosuchuser9"), ("nonexistent-utf8", "f\u00efreuser"),
           ("glob", "fire*"), ("recursive", "-R"), ("plus-numeric", "+0")]
    for label, value in bad:
        _add(f"owner-bad-{label}", value, (OWNER, GROUP), ILLEGAL)
    for label, template in [("dollar", "$(touch {m})"), ("backtick", "`touch {m}`"),
                            ("semi", "fireuser;touch {m}"), ("quote-break", "fireuser' /dev/null; touch {m}; '"),
                            ("newline", "fireuser\ntouch {m}")]:
        _add(f"owner-inject-{label}", template.format(m=marker()), (OWNER, GROUP), ILLEGAL)
    # Both empty: "no change" per the wire reference (`chown '':''`), or a 4xx.
    _add("owner-both-empty", "", (OWNER,), EITHER, "owner and group both empty")


# --------------------------------------------------------------------------------------
# Job names and job-list name filters.
# --------------------------------------------------------------------------------------

def _generate_job_names():
    legal = [
        ("plain", "hostile-job"), ("space", "a b"), ("space-lead-trail", " lead and trail "),
        ("comma", "a,b"), ("comma-parts-a", "ha"), ("comma-parts-b", "hb"), ("comma-parts", "ha,hb"),
        ("quote1", "it's"), ("backtick", "a`b`"), ("bs", "a\\b"),
        ("bs-only", "\\"), ("pipe", "a|b"), ("pipe-fields", "x|1|2|3"), ("equals", "a=b"),
        ("dollar", f"$(touch {marker()})"), ("backtick-cmd", f"`touch {marker()}`"),
        ("semi", f";touch {marker()}"), ("dash-output", f"--output={marker()}"),
        ("dash-o", f"-o{marker()}"), ("dash-help", "--help"), ("sbatch-directive", "#SBATCH --hold"),
        ("percent", "%j%u%x"), ("glob", "*"), ("e-acute", "caf\u00e9"), ("cjk", "日本語"),
        ("emoji", "🎉"), ("emoji-inner", "job🎉4byte"), ("html", "&amp;<b>"), ("jinja", "{{7*7}}"),
        ("colon", "a:b"), ("long-200", "n" * 200),
    ]
    for label, value in legal:
        _add(f"job-{label}", value, (JOB_NAME, JOB_FILTER), LEGAL)
    _add("job-quote2", 'say "hi"', (JOB_NAME, JOB_FILTER), EITHER, 'slurmdbd stores \'"\' as a backtick')
    ctrl = "a control character: Slurm stores it, but sacct/squeue output cannot carry it unescaped"
    for label, value in [("lf", "a\nb"), ("cr", "a\rb"), ("crlf", "a\r\nb"), ("tab", "a\tb"),
                         ("esc", "a\x1bb"), ("del", "a\x7fb"), ("ctl01", "a\x01b"),
                         ("lf-directive", f"x\n#SBATCH --output={marker()}")]:
        _add(f"job-ctl-{label}", value, (JOB_NAME, JOB_FILTER), EITHER, ctrl)
    _add("job-nul", "a\x00b", (JOB_NAME,), ILLEGAL, "NUL")
    _add("filter-nul", "a\x00b", (JOB_FILTER,), EITHER, "NUL: no job can have it; an empty list or a 4xx")
    _add("job-empty", "", (JOB_NAME,), EITHER, "empty name: default name, or refused")
    # Filter-only values (no job is submitted for these).
    for label, value in [("star", "%"), ("comma-only", ","), ("comma-trail", "nosuchjob,"),
                         ("235-ascii", "f" * 235), ("235-2byte", "\u00e9" * 235),
                         ("dash-allusers", "--allusers"), ("dash-user", "--user=root"), ("dash-a", "-a"),
                         ("inject", f"$(touch {marker()})"), ("quote-break", f"x' ; touch {marker()} ; '")]:
        _add(f"filter-{label}", value, (JOB_FILTER,), LEGAL)
    _add("filter-empty", "", (JOB_FILTER,), LEGAL, "empty means no filter (httpx sends None as empty)")
    _add("filter-236-ascii", "f" * 236, (JOB_FILTER,), ILLEGAL, "name filter is at most 235 characters")
    _add("filter-236-emoji", "🎉" * 236, (JOB_FILTER,), ILLEGAL, "name filter is at most 235 characters")


# --------------------------------------------------------------------------------------
# Job environment keys and values.
# --------------------------------------------------------------------------------------

def _generate_env():
    for label, key in [("upper", "HOSTILE_KEY"), ("underscore", "_"), ("lead-underscore", "_x1"),
                       ("lower", "lower_case"), ("long", "K" * 200)]:
        _add(f"envkey-{label}", key, (ENV_KEY,), LEGAL)
    for label, key in [("dash", "A-B"), ("digit-lead", "1A"), ("equals", "A=B"), ("empty", ""),
                       ("space", "A B"), ("newline", "A\nB"), ("comma", "A,B"), ("quote", "A'B"),
                       ("utf8", "\u00c4"), ("nul", "A\x00B"), ("dot", "A.B"), ("dollar", f"$(touch {marker()})"),
                       ("export-inject", f"X=1,BASH_ENV={marker()}")]:
        _add(f"envkey-bad-{label}", key, (ENV_KEY,), ILLEGAL)
    legal_values = [
        ("empty", ""), ("plain", "plain"), ("comma", "a,b"), ("comma-assign", "a,INJECTED_VAR=1"),
        ("space", "a b"), ("quote1", "'"), ("quote2", '"'), ("quotes-mixed", "it's \"q\" `b`"),
        ("dollar", f"$(touch {marker()})"), ("backtick", f"`touch {marker()}`"),
        ("quote1-break", f"';touch {marker()};'"), ("quote2-break", f"\";touch {marker()};\""),
        ("shellshock", f"() {{ :; }}; touch {marker()}"), ("var", "$HOME ${PATH}"),
        ("lf", "line1\nline2"), ("lf-only", "\n"), ("crlf", "a\r\nb"), ("cr", "a\rb"), ("tab", "a\tb"),
        ("esc", "\x1b[31mred"), ("del", "a\x7fb"), ("ctl01", "a\x01b"),
        ("directive", f"x\n#SBATCH --output={marker()}\n"), ("bs", "a\\b"), ("bs-only", "\\\\"),
        ("bs-quote", "a\\'b"), ("e-acute", "caf\u00e9"), ("emoji", "🎉"), ("cjk", "日本語"),
        ("all", "ALL"), ("none", "NONE"), ("export-none", "--export=NONE"), ("dash", "-x"),
        ("percent", "%j%%"), ("long", "v" * 8000), ("jinja", "{{7*7}}"), ("html", "&amp;<b>"),
    ]
    for label, value in legal_values:
        _add(f"envval-{label}", value, (ENV_VALUE,), LEGAL)
    _add("envval-nul", "a\x00b", (ENV_VALUE,), ILLEGAL, "NUL cannot be in an environment value")


_generate_names()
_generate_working_dirs()
_generate_modes()
_generate_owners()
_generate_job_names()
_generate_env()


def summary() -> dict[str, dict[str, int]]:
    out = {}
    for kind in KINDS:
        out[kind] = {e: len(cases(kind, expect=e)) for e in (LEGAL, ILLEGAL, EITHER)}
    return out


if __name__ == "__main__":
    for kind, counts in summary().items():
        print(f"{kind:16} {counts}")
    print("entries", len(TABLE), "markers", len(MARKERS))
