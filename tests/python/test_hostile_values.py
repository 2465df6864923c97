"""Every value of the hostile table (hostile.py) through every route that takes that kind of
value, against the Ironcrest of `scripts/dev-env up`, through pyfirecrest 3.10 where it can
express the request and raw httpx where it cannot (non-UTF-8 paths, job names, name filters,
hand-encoded multipart filenames, transfer rm/compress/extract).

Checks: never a 5xx; legal values round-trip byte-exact (on disk as root sees it, in the job's
environment, in the JSON output); illegal ones get a 4xx whose body names the field (or quotes
the value); and at the end no marker file of this run exists anywhere.

Speed: the requests of one route run concurrently on first use and the parametrized tests
only assert on the recorded outcomes. Jobs are submitted by a background thread at module
start while the filesystem tests run: compute jobs held (inspected where Slurm stores them,
then cancelled through the API), transfer jobs (a subset, see hostile._TRANSFER_PLAN) run to
the end. Whatever is left is scancel'ed at module teardown.

Run: eval "$(scripts/dev-env env)"; cd tests/python; /tmp/pytest310/bin/pytest -q test_hostile_values.py
(HOSTILE_KEEP=1 keeps the work directory /home/fireuser/py-hostile-<run>.)
"""

from __future__ import annotations

import concurrent.futures as cf
import grp
import hashlib
import io
import os
import pwd
import re
import shutil
import subprocess
import tarfile
import threading
import time
import traceback
import urllib.parse
import uuid
from dataclasses import dataclass, field

import firecrest
import httpx
import pytest
from firecrest.FirecrestException import FirecrestException

import hostile as H
from conftest import FIREUSER, own
from hostile import (
    CHMOD_MODE, EITHER, ENV_KEY, ENV_VALUE, FILE_NAME, GROUP, ILLEGAL, JOB_FILTER, JOB_NAME, LEGAL,
    OWNER, PATH_COMPONENT, UPLOAD_FILENAME, WORKDIR, cases,
)

SYSTEM = "cluster-slurm-ssh"
BASE = f"{FIREUSER.pw_dir}/py-hostile-{H.RUN}"
CONTENT = b"line1\nline2\nhostile\n"
HPCUSERS = grp.getgrnam("hpcusers")
WORKERS = 8
PATH_FIELDS = ("path", "sourcePath", "source_path")
JOB_FIELDS = ("job",)

# ---------------------------------------------------------------------------------------
# Plumbing: retries over server restarts, outcomes, assertions.
# ---------------------------------------------------------------------------------------


def retrying(fn, *args, **kwargs):
    """The lead engineer restarts the server now and then: retry refused connections."""
    deadline = time.time() + 180
    while True:
        try:
            return fn(*args, **kwargs)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout) as e:
            if time.time() > deadline:
                raise e
            time.sleep(2)


@dataclass
class Outcome:
    status: int | None
    body: object = None
    content: bytes = b""
    output: object = None
    error: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, resp: httpx.Response) -> "Outcome":
        try:
            body = resp.json()
        except Exception:
            body = None
        out = body.get("output") if isinstance(body, dict) else None
        return cls(resp.status_code, body, resp.content, out)

    @property
    def message(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("message"))
        return self.error or self.content[:300].decode(errors="replace")

    def __str__(self):
        return f"status={self.status} message={self.message[:400]!r}"


class Api:
    """Raw httpx, for what pyfirecrest cannot express."""

    def __init__(self):
        self.url = os.environ["IRONCREST_DEV_URL"]
        self.auth = firecrest.ClientCredentialsAuth(
            os.environ["IRONCREST_DEV_CLIENT_ID"],
            os.environ["IRONCREST_DEV_CLIENT_SECRET"],
            os.environ["IRONCREST_DEV_OIDC_TOKEN_URL"],
        )
        self.http = httpx.Client(timeout=60)

    def __call__(self, method, path, query=None, headers=None, **kwargs) -> Outcome:
        url = self.url + path
        if query:
            url += "?" + "&".join(
                f"{k}={urllib.parse.quote(v, safe='')}" for k, v in query.items()
            )
        headers = {"Authorization": f"Bearer {self.auth.get_access_token()}", **(headers or {})}
        return Outcome.of(retrying(self.http.request, method, url, headers=headers, **kwargs))


API: Api | None = None
CLIENT = None  # the pyfirecrest client (conftest's `client` fixture)


def pf(expected, fn, *args, **kwargs) -> Outcome:
    """A pyfirecrest call: its return value, or the status and body of the refusal."""
    try:
        out = retrying(fn, *args, **kwargs)
    except FirecrestException as e:
        responses = getattr(e, "responses", None)
        if responses:
            return Outcome.of(responses[-1])
        return Outcome(None, error=f"{type(e).__name__}: {e}")
    except Exception as e:  # the client itself choked (e.g. on a header it cannot encode)
        return Outcome(None, error=f"{type(e).__name__}: {e}")
    return Outcome(expected, output=out)


def ops(name):
    return f"/filesystem/{SYSTEM}/ops/{name}"


def no_5xx(o: Outcome, what=""):
    assert o.status is not None, f"{what}: no HTTP status, client-side error: {o.error}"
    assert o.status < 500, f"{what}: {o}"


def accepted(o: Outcome, what="", codes=(200, 201, 204)):
    no_5xx(o, what)
    assert o.status in codes, f"{what}: legal value refused: {o}"


def names_field(o: Outcome, fields, value) -> bool:
    body = o.body if isinstance(o.body, dict) else {}
    wanted = {f.lower() for f in fields}
    data = body.get("data") or {}
    for f in (data.get("fields") or []) if isinstance(data, dict) else []:
        if str(f.get("name", "")).lower() in wanted:
            return True
    message = str(body.get("message") or "")
    for f in fields:
        if re.search(rf"(?<![A-Za-z]){re.escape(f)}(?![A-Za-z])", message, re.I):
            return True
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    visible = "".join(ch for ch in value if ch.isprintable())
    return len(visible) >= 3 and visible in "".join(ch for ch in message if ch.isprintable())


def refused(o: Outcome, h, fields, what=""):
    no_5xx(o, what)
    assert o.status is not None and 400 <= o.status < 500, f"{what}: illegal {h!r} accepted: {o}"
    assert names_field(o, fields, h.value), (
        f"{what}: 4xx does not name the field {fields} nor the value: {o} data={o.body!r:.300}"
    )


def expect(o: Outcome, h, fields, what, check_legal, codes=(200, 201, 204)):
    """The table's verdict for one outcome. `check_legal()` asserts the round-trip."""
    if h.expect == ILLEGAL:
        refused(o, h, fields, what)
    elif h.expect == LEGAL or (o.status is not None and 200 <= o.status < 300):
        accepted(o, what, codes)
        check_legal()
    else:  # EITHER, refused
        refused(o, h, fields, what)


# ---------------------------------------------------------------------------------------
# Disk helpers (the tests run as root on the cluster's only node).
# ---------------------------------------------------------------------------------------


def b(path) -> bytes:
    return path if isinstance(path, bytes) else os.fsencode(path)


def mkdirs(path) -> bytes:
    path = b(path)
    todo = []
    p = path
    while not os.path.exists(p):
        todo.append(p)
        p = os.path.dirname(p)
    for p in reversed(todo):
        try:
            os.mkdir(p)
        except FileExistsError:  # another worker made it
            continue
        own(p)
    return path


def creatable(h) -> bool:
    return h.expect != ILLEGAL and b"\0" not in h.raw and len(h.raw) <= 255


def write(path, content=CONTENT):
    with open(b(path), "wb") as f:
        f.write(content)
    own(b(path))


def workdir(route, h, keep=True) -> bytes:
    d = mkdirs(f"{BASE}/{route}/{H.TABLE.index(h):03d}")
    if keep:
        write(d + b"/keep", b"keep\n")
    return d


def join(d: bytes, h) -> tuple[bytes, str | bytes]:
    """The on-disk path and the API's spelling of `d/<value>`."""
    p = d + b"/" + h.raw
    return p, (os.fsdecode(d) + "/" + h.value if h.is_text else p)


def listing(d: bytes) -> list[bytes]:
    return sorted(os.listdir(d))


def tar_gz(path: bytes, member: bytes, content=CONTENT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo(os.fsdecode(member))
        info.size = len(content)
        info.mode = 0o644
        t.addfile(info, io.BytesIO(content))
    write(path, buf.getvalue())


def tar_members(path: bytes):
    with tarfile.open(os.fsdecode(path), "r:*") as t:
        return [(os.fsencode(m.name), t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()]


# ---------------------------------------------------------------------------------------
# Route registry: each route runs all its entries concurrently on first use.
# ---------------------------------------------------------------------------------------

ROUTES: dict = {}
RESULTS: dict = {}


def route(name, entries):
    def deco(fn):
        ROUTES[name] = (fn, entries)
        return fn

    return deco


def run_one(fn, h):
    try:
        return fn(h)
    except BaseException as e:  # recorded, raised in the test of that entry
        e.add_note(traceback.format_exc())
        return e


def result(name, h) -> Outcome:
    if name not in RESULTS:
        fn, entries = ROUTES[name]
        with cf.ThreadPoolExecutor(WORKERS) as pool:
            futures = {e.id: pool.submit(run_one, fn, e) for e in entries}
        RESULTS[name] = {k: f.result() for k, f in futures.items()}
    r = RESULTS[name][h.id]
    if isinstance(r, BaseException):
        raise r
    return r


def params(entries):
    return [pytest.param(h, id=h.id) for h in entries]


JOB_TESTS = ("test_job_", "test_env_", "test_working_", "test_transfer_", "test_zz_")


@pytest.fixture(scope="module", autouse=True)
def setup_module_state(client, request):
    global API, CLIENT
    API, CLIENT = Api(), client
    mkdirs(BASE)
    if any(item.name.startswith(JOB_TESTS) for item in request.session.items):
        JOBS.start()
    yield
    JOBS.cleanup()
    if not os.environ.get("HOSTILE_KEEP"):
        shutil.rmtree(BASE, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Entry lists.
# ---------------------------------------------------------------------------------------

READ_NAMES = [h for h in cases(FILE_NAME) if not h.id.startswith("mkname-")]
READ_LEGAL = [h for h in READ_NAMES if h.expect == LEGAL]
JSON_NAMES = [h for h in READ_NAMES if h.is_text]
CREATE_NAMES = cases(FILE_NAME, text_only=True)
HTTPX_AMBIGUOUS = re.compile(r"%(?:[01][0-9a-fA-F]|22)")  # httpx percent-encodes 0x00-0x1F and '"', not '%'
# The server must read httpx's encoding (pyfirecrest's): %XX for 0x00-0x1F and '"', '\\' for '\'.
# WHATWG (browsers) writes only " CR LF as %22 %0D %0A and a backslash raw, so under it a name
# holding such a %XX, a double backslash, or ending in a backslash (`\"` closes the value)
# cannot be told apart from an escape: those names are left out of the raw WHATWG route.
WHATWG_AMBIGUOUS = re.compile(r"%(?:[01][0-9a-fA-F]|22)|\\\\|\\$")
UPLOAD_HTTPX = [h for h in cases(UPLOAD_FILENAME) if not HTTPX_AMBIGUOUS.search(h.value)]
UPLOAD_WHATWG = [h for h in cases(UPLOAD_FILENAME) if not WHATWG_AMBIGUOUS.search(h.value)]
COMPONENTS = cases(PATH_COMPONENT)
COMPONENTS_LEGAL = cases(PATH_COMPONENT, expect=LEGAL)


def prepared(route_name, h) -> tuple[bytes, bytes, str | bytes]:
    """A fresh directory holding `keep` and (if it can exist) the file `<value>`."""
    d = workdir(route_name, h)
    p, api_path = join(d, h)
    if creatable(h):
        write(p)
    return d, p, api_path


def read_op(name, pyfirecrest_call, query=None):
    """A GET op on `d/<value>`: pyfirecrest for text, raw httpx for non-UTF-8 names."""

    def run(h):
        d, p, api_path = prepared(name, h)
        if h.is_text:
            o = pf(200, pyfirecrest_call, SYSTEM, api_path)
        else:
            o = API("GET", ops(name), {"path": api_path, **(query or {})})
        o.extra.update(d=d, p=p)
        return o

    return run


# ---------------------------------------------------------------------------------------
# Filesystem ops: read ops on a file created (as root, chowned) with that exact name.
# ---------------------------------------------------------------------------------------


def _ls_dir(h):
    d, p, _ = prepared("ls", h)
    if h.is_text:
        o = pf(200, CLIENT.list_files, SYSTEM, os.fsdecode(d), show_hidden=True)
    else:
        o = API("GET", ops("ls"), {"path": d, "showHidden": "true"})
    return o


route("ls", READ_LEGAL)(_ls_dir)


@pytest.mark.parametrize("h", params(READ_LEGAL))
def test_ls_lists_the_name_exactly(h):
    o = result("ls", h)
    accepted(o, "ls of the directory")
    names = [f["name"] for f in o.output]
    if h.is_text:
        assert sorted(names) == sorted([h.value, "keep"]), f"ls names {names!r}"
    else:
        assert len(names) == 2, f"ls of a non-UTF-8 name: {names!r}"


route("ls-entry", READ_NAMES)(read_op("ls", lambda s, p: CLIENT.list_files(s, p, show_hidden=True)))


@pytest.mark.parametrize("h", params(READ_NAMES))
def test_ls_of_the_path(h):
    o = result("ls-entry", h)

    def legal():
        assert len(o.output) == 1, o.output
        if h.is_text:
            assert o.output[0]["name"] in (h.value, os.fsdecode(o.extra["p"])), o.output[0]["name"]

    expect(o, h, PATH_FIELDS, "ls", legal)


route("stat", READ_NAMES)(read_op("stat", lambda s, p: CLIENT.stat(s, p)))


@pytest.mark.parametrize("h", params(READ_NAMES))
def test_stat(h):
    o = result("stat", h)

    def legal():
        st = os.lstat(o.extra["p"])
        assert (o.output["ino"], o.output["size"]) == (st.st_ino, st.st_size)

    expect(o, h, PATH_FIELDS, "stat", legal)


route("head", READ_NAMES)(read_op("head", lambda s, p: CLIENT.head(s, p)))
route("tail", READ_NAMES)(read_op("tail", lambda s, p: CLIENT.tail(s, p)))


@pytest.mark.parametrize("op", ["head", "tail"])
@pytest.mark.parametrize("h", params(READ_NAMES))
def test_head_tail(h, op):
    o = result(op, h)
    expect(o, h, PATH_FIELDS, op, lambda: _eq(o.output["content"], CONTENT.decode()))


def _eq(a, b_):
    assert a == b_, f"{a!r} != {b_!r}"


route("view", READ_NAMES)(read_op("view", lambda s, p: CLIENT.view(s, p)))


@pytest.mark.parametrize("h", params(READ_NAMES))
def test_view(h):
    o = result("view", h)
    expect(o, h, PATH_FIELDS, "view", lambda: _eq(o.output, CONTENT.decode()))


route("checksum", READ_NAMES)(read_op("checksum", lambda s, p: CLIENT.checksum(s, p)))


@pytest.mark.parametrize("h", params(READ_NAMES))
def test_checksum(h):
    o = result("checksum", h)
    expect(o, h, PATH_FIELDS, "checksum",
           lambda: _eq(o.output, {"algorithm": "SHA256", "checksum": hashlib.sha256(CONTENT).hexdigest()}))


route("file", READ_NAMES)(read_op("file", lambda s, p: CLIENT.file_type(s, p)))


@pytest.mark.parametrize("h", params(READ_NAMES))
def test_file_type(h):
    o = result("file", h)
    expect(o, h, PATH_FIELDS, "file", lambda: _eq(o.output, "ASCII text"))


@route("download", READ_NAMES)
def _download(h):
    d, p, api_path = prepared("download", h)
    if h.is_text:
        local = f"/tmp/hostile-download-{uuid.uuid4().hex}"
        o = pf(200, CLIENT.download, SYSTEM, api_path, local)
        if os.path.exists(local):
            with open(local, "rb") as f:
                o.content = f.read()
            os.remove(local)
    else:
        o = API("GET", ops("download"), {"path": api_path})
    return o


@pytest.mark.parametrize("h", params(READ_NAMES))
def test_download(h):
    o = result("download", h)
    expect(o, h, PATH_FIELDS, "download", lambda: _eq(o.content, CONTENT))


@route("rm", READ_NAMES)
def _rm(h):
    d, p, api_path = prepared("rm", h)
    if h.is_text:
        o = pf(204, CLIENT.rm, SYSTEM, api_path)
    else:
        o = API("DELETE", ops("rm"), {"path": api_path})
    o.extra.update(after=listing(d))
    return o


@pytest.mark.parametrize("h", params(READ_NAMES))
def test_rm(h):
    o = result("rm", h)
    expect(o, h, PATH_FIELDS, "rm", lambda: _eq(o.extra["after"], [b"keep"]))
    assert b"keep" in o.extra["after"], "rm removed a sibling"


@route("chmod-path", JSON_NAMES)
def _chmod_path(h):
    d, p, api_path = prepared("chmod-path", h)
    o = pf(200, CLIENT.chmod, SYSTEM, api_path, "600")
    o.extra.update(p=p, keep_mode=os.stat(d + b"/keep").st_mode & 0o7777)
    return o


@pytest.mark.parametrize("h", params(JSON_NAMES))
def test_chmod_on_hostile_path(h):
    o = result("chmod-path", h)
    expect(o, h, PATH_FIELDS, "chmod", lambda: _eq(os.lstat(o.extra["p"]).st_mode & 0o7777, 0o600))
    assert o.extra["keep_mode"] == 0o644, "chmod touched a sibling"


@route("chown-path", JSON_NAMES)
def _chown_path(h):
    d, p, api_path = prepared("chown-path", h)
    o = pf(200, CLIENT.chown, SYSTEM, api_path, "", "hpcusers")
    o.extra.update(p=p, keep_gid=os.stat(d + b"/keep").st_gid)
    return o


@pytest.mark.parametrize("h", params(JSON_NAMES))
def test_chown_on_hostile_path(h):
    o = result("chown-path", h)
    expect(o, h, PATH_FIELDS, "chown", lambda: _eq(os.lstat(o.extra["p"]).st_gid, HPCUSERS.gr_gid))
    assert o.extra["keep_gid"] == FIREUSER.pw_gid, "chown touched a sibling"


@route("compress", JSON_NAMES)
def _compress(h):
    d, p, api_path = prepared("compress", h)
    archive = d + b"/archive.tar.gz"
    o = pf(204, CLIENT.compress, SYSTEM, api_path, os.fsdecode(archive), compression="gzip")
    o.extra.update(archive=archive)
    return o


@pytest.mark.parametrize("h", params(JSON_NAMES))
def test_compress(h):
    o = result("compress", h)
    expect(o, h, PATH_FIELDS, "compress",
           lambda: _eq(tar_members(o.extra["archive"]), [(h.raw, CONTENT)]))


@route("extract", JSON_NAMES)
def _extract(h):
    d = workdir("extract", h)
    p, api_path = join(d, h)
    if creatable(h):
        tar_gz(p, h.raw)
    out = mkdirs(d + b"/out")
    o = pf(204, CLIENT.extract, SYSTEM, api_path, os.fsdecode(out), compression="gzip")
    o.extra.update(out=out)
    return o


@pytest.mark.parametrize("h", params(JSON_NAMES))
def test_extract(h):
    o = result("extract", h)

    def legal():
        out = o.extra["out"]
        assert listing(out) == [h.raw]
        with open(out + b"/" + h.raw, "rb") as f:
            assert f.read() == CONTENT

    expect(o, h, PATH_FIELDS, "extract", legal)


# ---------------------------------------------------------------------------------------
# Filesystem ops that create the name: mkdir, symlink (link and target), upload.
# ---------------------------------------------------------------------------------------


@route("mkdir", CREATE_NAMES)
def _mkdir(h):
    d = workdir("mkdir", h)
    p, api_path = join(d, h)
    o = pf(201, CLIENT.mkdir, SYSTEM, api_path)
    o.extra.update(after=listing(d), p=p)
    return o


@pytest.mark.parametrize("h", params(CREATE_NAMES))
def test_mkdir(h):
    o = result("mkdir", h)

    def legal():
        assert o.extra["after"] == sorted([h.raw, b"keep"])
        assert os.path.isdir(o.extra["p"])
        assert o.output["type"] == "d", o.output

    expect(o, h, PATH_FIELDS, "mkdir", legal)
    if h.expect == ILLEGAL:
        assert o.extra["after"] == [b"keep"], f"mkdir created {o.extra['after']!r}"


@route("mkdir-parents", COMPONENTS)
def _mkdir_parents(h):
    d = workdir("mkdir-parents", h)
    p, api_path = join(d, h)
    o = pf(201, CLIENT.mkdir, SYSTEM, api_path + "/leaf", create_parents=True)
    o.extra.update(after=listing(d), p=p)
    return o


@pytest.mark.parametrize("h", params(COMPONENTS))
def test_mkdir_parents_with_hostile_component(h):
    o = result("mkdir-parents", h)

    def legal():
        assert o.extra["after"] == sorted([h.raw, b"keep"])
        assert os.listdir(o.extra["p"]) == [b"leaf"]

    expect(o, h, PATH_FIELDS, "mkdir -p", legal)


@route("symlink-link", CREATE_NAMES)
def _symlink_link(h):
    d = workdir("symlink-link", h)
    p, api_path = join(d, h)
    o = pf(201, CLIENT.symlink, SYSTEM, os.fsdecode(d) + "/keep", api_path)
    o.extra.update(after=listing(d), p=p, target=d + b"/keep")
    return o


@pytest.mark.parametrize("h", params(CREATE_NAMES))
def test_symlink_link_path(h):
    o = result("symlink-link", h)

    def legal():
        assert o.extra["after"] == sorted([h.raw, b"keep"])
        assert os.readlink(o.extra["p"]) == o.extra["target"]

    expect(o, h, ("linkPath", "link_path", "link"), "symlink link", legal)


SYMLINK_TARGETS = [h for h in CREATE_NAMES if not h.id.startswith("mkname-")]


@route("symlink-target", SYMLINK_TARGETS)
def _symlink_target(h):
    d = workdir("symlink-target", h)
    p, api_path = join(d, h)
    o = pf(201, CLIENT.symlink, SYSTEM, api_path, os.fsdecode(d) + "/link")
    o.extra.update(link=d + b"/link", p=p)
    return o


@pytest.mark.parametrize("h", params(SYMLINK_TARGETS))
def test_symlink_target(h):
    o = result("symlink-target", h)
    if h.expect == ILLEGAL and b"\0" not in h.raw:
        # A link's target may hold a component longer than NAME_MAX: either way is right.
        h = H.Hostile(h.id, h.value, h.kinds, EITHER, h.why)

    def legal():
        assert os.readlink(o.extra["link"]) == o.extra["p"]
        assert o.output["output"]["linkTarget"] == os.fsdecode(o.extra["p"]), o.output

    expect(o, h, PATH_FIELDS, "symlink target", legal)


def _upload_check(o, h):
    def legal():
        assert o.extra["after"] == sorted([h.raw, b"keep"])
        with open(o.extra["d"] + b"/" + h.raw, "rb") as f:
            assert f.read() == CONTENT

    expect(o, h, ("file", "filename", "file name"), "upload", legal)
    if h.expect == ILLEGAL:
        assert o.extra["after"] == [b"keep"], f"upload created {o.extra['after']!r}"


@route("upload-pyfirecrest", UPLOAD_HTTPX)
def _upload_pyfirecrest(h):
    d = workdir("upload-pyfirecrest", h)
    local = f"/tmp/hostile-upload-{uuid.uuid4().hex}"
    with open(local, "wb") as f:
        f.write(CONTENT)
    try:
        o = pf(204, CLIENT.upload, SYSTEM, local, os.fsdecode(d), h.value)
    finally:
        os.remove(local)
    o.extra.update(after=listing(d), d=d)
    return o


@pytest.mark.parametrize("h", params(UPLOAD_HTTPX))
def test_upload_pyfirecrest_filename(h):
    _upload_check(result("upload-pyfirecrest", h), h)


def whatwg_filename(value: str) -> bytes:
    """How browsers (and the WHATWG multipart/form-data spec) write a filename."""
    return value.encode().replace(b'"', b"%22").replace(b"\r", b"%0D").replace(b"\n", b"%0A")


@route("upload-whatwg", UPLOAD_WHATWG)
def _upload_whatwg(h):
    d = workdir("upload-whatwg", h)
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="' + whatwg_filename(h.value) + b'"\r\n'
        + b"Content-Type: application/octet-stream\r\n\r\n"
        + CONTENT + f"\r\n--{boundary}--\r\n".encode()
    )
    o = API("POST", ops("upload"), {"path": os.fsdecode(d)},
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}, content=body)
    o.extra.update(after=listing(d), d=d)
    return o


@pytest.mark.parametrize("h", params(UPLOAD_WHATWG))
def test_upload_whatwg_encoded_filename(h):
    _upload_check(result("upload-whatwg", h), h)


@route("upload-dir", COMPONENTS)
def _upload_dir(h):
    d = workdir("upload-dir", h)
    p, api_path = join(d, h)
    if creatable(h):
        mkdirs(p)
    local = f"/tmp/hostile-upload-{uuid.uuid4().hex}"
    with open(local, "wb") as f:
        f.write(CONTENT)
    try:
        o = pf(204, CLIENT.upload, SYSTEM, local, api_path, "up.txt")
    finally:
        os.remove(local)
    o.extra.update(p=p)
    return o


@pytest.mark.parametrize("h", params(COMPONENTS))
def test_upload_into_hostile_directory(h):
    o = result("upload-dir", h)

    def legal():
        with open(o.extra["p"] + b"/up.txt", "rb") as f:
            assert f.read() == CONTENT

    expect(o, h, PATH_FIELDS, "upload into directory", legal)


@route("ls-recursive", COMPONENTS_LEGAL)
def _ls_recursive(h):
    d = workdir("ls-recursive", h)
    p, _ = join(d, h)
    mkdirs(p)
    write(p + b"/inner")
    return pf(200, CLIENT.list_files, SYSTEM, os.fsdecode(d), show_hidden=True, recursive=True)


@pytest.mark.parametrize("h", params(COMPONENTS_LEGAL))
def test_ls_recursive_with_hostile_directory(h):
    o = result("ls-recursive", h)
    accepted(o, "ls -R")
    names = sorted(f["name"] for f in o.output)
    assert names == sorted(["keep", h.value, f"{h.value}/inner"]), names


# ---------------------------------------------------------------------------------------
# chmod modes and chown owners/groups.
# ---------------------------------------------------------------------------------------

MODES = cases(CHMOD_MODE)


def oracle_mode(path: bytes, mode: str):
    """What GNU chmod, run as fireuser, makes of `mode` on a 0644 file (None: it refuses)."""
    write(path)
    os.chmod(path, 0o644)
    if "\0" in mode:
        return None
    rc = subprocess.run(["runuser", "-u", "fireuser", "--", "chmod", "--", mode, path],
                        capture_output=True).returncode
    return os.stat(path).st_mode & 0o7777 if rc == 0 else None


@route("chmod", MODES)
def _chmod(h):
    d = workdir("chmod", h)
    expected = oracle_mode(d + b"/oracle", h.value)
    write(d + b"/f")
    os.chmod(d + b"/f", 0o644)
    o = pf(200, CLIENT.chmod, SYSTEM, os.fsdecode(d) + "/f", h.value)
    o.extra.update(expected=expected, mode=os.stat(d + b"/f").st_mode & 0o7777)
    return o


@pytest.mark.parametrize("h", params(MODES))
def test_chmod_mode(h):
    o = result("chmod", h)

    def legal():
        assert o.extra["expected"] is not None, "the server applied a mode GNU chmod refuses"
        assert oct(o.extra["mode"]) == oct(o.extra["expected"]), "mode on disk differs from chmod's"

    expect(o, h, ("mode",), "chmod", legal)
    if o.status is None or o.status >= 300:
        assert o.extra["mode"] == 0o644, f"refused, yet the mode changed to {oct(o.extra['mode'])}"


def resolve(kind, value):
    if kind == OWNER:
        return pwd.getpwuid(int(value)).pw_uid if value.isdigit() else pwd.getpwnam(value).pw_uid
    return grp.getgrgid(int(value)).gr_gid if value.isdigit() else grp.getgrnam(value).gr_gid


def _chown_runner(kind):
    def run(h):
        d = workdir(f"chown-{kind}", h)
        write(d + b"/f")
        args = (h.value, "") if kind == OWNER else ("", h.value)
        o = pf(200, CLIENT.chown, SYSTEM, os.fsdecode(d) + "/f", *args)
        st = os.stat(d + b"/f")
        o.extra.update(uid=st.st_uid, gid=st.st_gid)
        return o

    return run


OWNERS = cases(OWNER)
GROUPS = cases(GROUP)
route("chown-owner", OWNERS)(_chown_runner(OWNER))
route("chown-group", GROUPS)(_chown_runner(GROUP))


@pytest.mark.parametrize("kind,h", [pytest.param(OWNER, h, id=f"owner-{h.id}") for h in OWNERS]
                         + [pytest.param(GROUP, h, id=f"group-{h.id}") for h in GROUPS])
def test_chown_owner_group(kind, h):
    o = result(f"chown-{kind}", h)
    unchanged = (FIREUSER.pw_uid, FIREUSER.pw_gid)

    def legal():
        if h.value == "":
            assert (o.extra["uid"], o.extra["gid"]) == unchanged
        elif kind == OWNER:
            assert o.extra["uid"] == resolve(kind, h.value)
        else:
            assert o.extra["gid"] == resolve(kind, h.value)

    fields = ("owner", "group") if h.value == "" else (kind,)
    expect(o, h, fields, f"chown {kind}", legal)
    if o.status is None or o.status >= 300:
        assert (o.extra["uid"], o.extra["gid"]) == unchanged, "refused, yet ownership changed"


# ---------------------------------------------------------------------------------------
# Jobs, submitted by a background thread at module start and checked at the end.
#
# Slurm here starts about one batch job every 3 s, so only the transfer jobs run. Every
# compute job is submitted held (`#SBATCH --hold` in its script), inspected as root where
# Slurm keeps it (the environment sbatch stored, squeue's raw WorkDir, the stored batch
# script, StdOut), listed through the API, then cancelled through the API.
# ---------------------------------------------------------------------------------------

JOB_DIR = f"{BASE}/jobs"
HELD_SCRIPT = "#!/bin/bash\n#SBATCH --hold\n#SBATCH --output=/dev/null\ntrue\n"
STATE = os.path.join(os.environ.get("IRONCREST_DEV_PREFIX", "/tmp/ironcrest-dev"), "slurm", "state")
WD_FIELDS = ("workingDirectory", "working_directory", "current_working_directory", "job", "directory")
ENV_FIELDS = ("env", "environment", "job")
NAME_FIELDS = ("name", "job", "job_name", "jobName")
NAME_JOBS = cases(JOB_NAME)
FILTERS = cases(JOB_FILTER)
ENV_KEYS = cases(ENV_KEY)
ENV_VALUES = cases(ENV_VALUE)
WORKDIRS = cases(WORKDIR)
TRANSFER_CASES = [pytest.param(h, op, id=f"{h.id}-{op}") for h in cases(FILE_NAME) for op in h.transfer]


def stored_environment(job_id) -> dict[bytes, bytes] | None:
    """The environment sbatch handed to slurmctld (uint32 count, then NUL-separated K=V)."""
    data = _read(f"{STATE}/hash.{int(job_id) % 10}/job.{job_id}/environment")
    if data is None:
        return None
    env = {}
    for item in data[4:].split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k] = v
    return env


def scontrol_field(job_id, name):
    out = subprocess.run(["scontrol", "show", "-o", "job", str(job_id)], capture_output=True).stdout
    m = re.search(rb"(?:^| )" + name.encode() + rb"=(.*?)(?= [A-Za-z/:]+=|$)", out)
    return m.group(1).decode(errors="replace") if m else None


class Jobs:
    def __init__(self):
        self.thread = None
        self.results = {}
        self.job_ids = set()
        self.unfinished = set()
        self.failure = None

    def start(self):
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def result(self, route_name, h) -> Outcome:
        self.thread.join(timeout=420)
        assert not self.thread.is_alive(), "the job runner did not finish in time"
        if self.failure:
            raise self.failure
        r = self.results[(route_name, h.id)]
        if isinstance(r, BaseException):
            raise r
        if "observe_error" in r.extra:
            raise r.extra["observe_error"]
        return r

    def _main(self):
        try:
            self._run()
        except BaseException as e:
            e.add_note(traceback.format_exc())
            self.failure = e

    def _record(self, o: Outcome):
        job_id = None
        for body in (o.body, o.output):
            if isinstance(body, dict):
                job_id = job_id or body.get("jobId") or (body.get("transferJob") or {}).get("jobId")
        if job_id:
            self.job_ids.add(str(job_id))
            o.extra["job_id"] = str(job_id)
        return o

    def _pool(self, tasks, workers=WORKERS):
        """Runs `(key, fn)` tasks concurrently into self.results."""
        with cf.ThreadPoolExecutor(workers) as pool:
            futures = {key: pool.submit(run_one, fn, None) for key, fn in tasks}
        for key, f in futures.items():
            self.results[key] = f.result()

    def _observe(self, keys):
        for key in keys:
            o = self.results.get(key)
            if isinstance(o, Outcome) and "observe" in o.extra:
                try:
                    o.extra.pop("observe")(o)
                except BaseException as e:
                    e.add_note(traceback.format_exc())
                    o.extra["observe_error"] = e

    def _run(self):
        mkdirs(JOB_DIR)
        transfers = [((f"transfer-{op}", h.id), lambda _, h=h, op=op: self._submit_transfer(h, op))
                     for h, op in (p.values for p in TRANSFER_CASES)]
        held = (
            [(("name", h.id), lambda _, h=h: self._submit_named(h)) for h in NAME_JOBS]
            + [(("env-key", h.id), lambda _, h=h: self._submit_env(h, {h.value: f"value-{h.id}"}))
               for h in ENV_KEYS]
            + [(("env-value", h.id), lambda _, h=h: self._submit_env(h, {"HOSTILE_VALUE": h.value}))
               for h in ENV_VALUES]
            + [(("workdir", h.id), lambda _, h=h: self._submit_workdir(h)) for h in WORKDIRS]
        )
        self._pool(transfers + held)  # transfers first: they are the long pole
        self._observe([key for key, _ in held])
        # Two at a time: a listing reads the user's whole recent history (thousands of jobs on
        # a dev cluster that has run the suites for weeks), and eight at once on 2 cores, beside
        # the held jobs, ran past the 10 s command timeout (408).
        self._pool([(("filter", h.id), lambda _, h=h: API("GET", f"/compute/{SYSTEM}/jobs", {"name": h.value}))
                    for h in FILTERS], workers=2)
        to_cancel = [key for key, _ in held
                     if isinstance(self.results[key], Outcome) and "job_id" in self.results[key].extra]
        self._pool([(("cancel",) + key, lambda _, key=key: API(
            "DELETE", f"/compute/{SYSTEM}/jobs/{self.results[key].extra['job_id']}")) for key in to_cancel])
        self._wait_for_jobs()
        self._observe([key for key, _ in transfers])

    def _wait_for_jobs(self, timeout=240):
        deadline = time.time() + timeout
        while time.time() < deadline:
            # Not `squeue -j`: it prints nothing at all once one of the ids has left.
            out = subprocess.run(["squeue", "-h", "-o", "%i", "-u", "fireuser"],
                                 capture_output=True, text=True).stdout
            self.unfinished = self.job_ids & set(out.split())
            if not self.unfinished:
                return
            time.sleep(1)

    def _held_observation(self, o):
        if "job_id" not in o.extra:
            return
        job_id = o.extra["job_id"]
        for _ in range(40):
            get = API("GET", f"/compute/{SYSTEM}/jobs/{job_id}")
            if get.status != 404:
                break
            time.sleep(0.5)
        o.extra.update(
            get=get,
            stdout=scontrol_field(job_id, "StdOut"),
            environ=stored_environment(job_id),
            workdir=subprocess.run(["squeue", "-h", "-o", "%Z", "-j", job_id], capture_output=True).stdout,
            script=subprocess.run(["scontrol", "write", "batch_script", job_id, "-"], capture_output=True).stdout,
        )

    # --- submissions -------------------------------------------------------------------

    def _submit_named(self, h):
        job = {"name": h.value, "workingDirectory": JOB_DIR, "script": HELD_SCRIPT}
        o = self._record(API("POST", f"/compute/{SYSTEM}/jobs", json={"job": job}))
        o.extra["observe"] = self._held_observation
        return o

    def _submit_env(self, h, env):
        o = self._record(pf(201, CLIENT.submit, SYSTEM, working_dir=JOB_DIR,
                            script_str=HELD_SCRIPT, env_vars=env))
        o.extra["observe"] = self._held_observation
        return o

    def _submit_workdir(self, h):
        if h.expect == ILLEGAL:  # used as is: relative, empty, NUL
            return self._record(pf(201, CLIENT.submit, SYSTEM, working_dir=h.value, script_str=HELD_SCRIPT))
        base = mkdirs(f"{JOB_DIR}/wd-{H.TABLE.index(h):03d}")
        wd, api_wd = join(base, h)
        mkdirs(wd)
        write(wd + b"/job.sh", HELD_SCRIPT.encode())
        o = self._record(pf(201, CLIENT.submit, SYSTEM, working_dir=api_wd,
                            script_remote_path=api_wd + "/job.sh"))
        o.extra.update(wd=wd, api_wd=api_wd, observe=self._held_observation)
        return o

    def _submit_transfer(self, h, op):
        d = workdir(f"transfer-{op}", h)
        p, api_path = join(d, h)
        out = mkdirs(d + b"/out")
        target = out + b"/" + h.raw
        api_target = os.fsdecode(out) + "/" + h.value
        if creatable(h):
            if op == "extract":
                tar_gz(p, h.raw)
            else:
                write(p)
        base = f"/filesystem/{SYSTEM}/transfer"
        if op == "cp":
            o = API("POST", f"{base}/cp", json={"sourcePath": api_path, "targetPath": api_target})
        elif op == "mv":
            o = API("POST", f"{base}/mv", json={"sourcePath": api_path, "targetPath": api_target})
        elif op == "rm":
            o = API("DELETE", f"{base}/rm", {"path": api_path})
        elif op == "compress":
            o = API("POST", f"{base}/compress", json={
                "sourcePath": api_path, "targetPath": os.fsdecode(out) + "/archive.tar.gz",
                "compression": "gzip", "dereference": False})
        else:
            o = API("POST", f"{base}/extract", json={
                "sourcePath": api_path, "targetPath": os.fsdecode(out), "compression": "gzip"})
        self._record(o)

        def observe(o):
            logs = (o.body.get("transferJob") or {}).get("logs", {}) if isinstance(o.body, dict) else {}
            if logs.get("outputLog"):
                o.extra["log"] = _read(logs["outputLog"]) or b""
                o.extra["errlog"] = _read(logs.get("errorLog") or "") or b""
                for key in ("outputLog", "errorLog"):
                    if logs.get(key) and os.path.exists(logs[key]):
                        os.remove(logs[key])
            o.extra.update(src_after=listing(d), out_after=listing(out))
            if op == "compress" and os.path.exists(out + b"/archive.tar.gz"):
                o.extra["members"] = tar_members(out + b"/archive.tar.gz")
            if os.path.isfile(target):
                o.extra["target_content"] = _read(target)

        o.extra["observe"] = observe
        return o

    def cleanup(self):
        if self.thread is not None:
            self.thread.join(timeout=420)
        if self.job_ids:
            subprocess.run(["scancel", *sorted(self.job_ids)], capture_output=True)


def _read(path):
    try:
        with open(b(path), "rb") as f:
            return f.read()
    except (ValueError, OSError):
        return None


JOBS = Jobs()


def held_checks(o, cancel_key):
    """What every accepted held job must show: no injected directive, cancellable."""
    assert o.extra.get("stdout") == "/dev/null", f"StdOut is {o.extra.get('stdout')!r}: an injected directive?"
    cancel = JOBS.results[cancel_key]
    if cancel.status == 409 and "CANCELLED" in cancel.message:
        return  # someone else's test cancelled it first (other suites pick pending jobs)
    accepted(cancel, "cancel through the API", (204,))


@pytest.mark.parametrize("h", params(NAME_JOBS))
def test_job_name(h):
    o = JOBS.result("name", h)

    def legal():
        held_checks(o, ("cancel", "name", h.id))
        if h.value == "":
            return
        get = o.extra["get"]
        accepted(get, "GET job", (200,))
        assert get.body["jobs"][0]["name"] == h.value, f"name as listed: {get.body['jobs'][0]['name']!r}"

    expect(o, h, NAME_FIELDS, "submit with name", legal, codes=(201,))


@pytest.mark.parametrize("h", params(FILTERS))
def test_job_list_name_filter(h):
    o = JOBS.result("filter", h)
    if h.expect == ILLEGAL:
        refused(o, h, ("name",), "jobs?name=")
        return
    accepted(o, "jobs?name=", (200,))
    jobs = o.body.get("jobs") or []
    if h.value != "":
        wrong = [j["name"] for j in jobs if j["name"] != h.value]
        assert not wrong, f"the filter returned jobs of other names: {wrong[:5]!r}"
    submitted = JOBS.results.get(("name", h.id))
    if isinstance(submitted, Outcome) and "job_id" in submitted.extra:
        assert submitted.extra["job_id"] in [j["jobId"] for j in jobs], "the named job is not listed"


@pytest.mark.parametrize("h", params(ENV_KEYS))
def test_env_key(h):
    o = JOBS.result("env-key", h)

    def legal():
        held_checks(o, ("cancel", "env-key", h.id))
        env = o.extra.get("environ")
        assert env, "no stored environment for the job"
        assert env.get(h.raw) == f"value-{h.id}".encode(), f"{h.value!r} in the job: {env.get(h.raw)!r}"

    fields = ENV_FIELDS + (h.value,) if h.value else ENV_FIELDS
    expect(o, h, fields, "submit env key", legal, codes=(201,))


@pytest.mark.parametrize("h", params(ENV_VALUES))
def test_env_value(h):
    o = JOBS.result("env-value", h)

    def legal():
        held_checks(o, ("cancel", "env-value", h.id))
        env = o.extra.get("environ")
        assert env, "no stored environment for the job"
        assert env.get(b"HOSTILE_VALUE") == h.raw, f"value in the job: {env.get(b'HOSTILE_VALUE')!r}"
        assert b"INJECTED_VAR" not in env, "a comma in the value defined another variable"

    expect(o, h, ENV_FIELDS + ("HOSTILE_VALUE",), "submit env value", legal, codes=(201,))


@pytest.mark.parametrize("h", params(WORKDIRS))
def test_working_directory_and_script_path(h):
    o = JOBS.result("workdir", h)

    def legal():
        held_checks(o, ("cancel", "workdir", h.id))
        assert o.extra["workdir"] == o.extra["wd"] + b"\n", f"Slurm's WorkDir: {o.extra['workdir']!r}"
        assert o.extra["script"] == HELD_SCRIPT.encode(), f"stored script: {o.extra['script']!r:.200}"
        get = o.extra["get"]
        accepted(get, "GET job", (200,))
        assert get.body["jobs"][0]["workingDirectory"] == o.extra["api_wd"]

    expect(o, h, WD_FIELDS, "submit working dir + scriptPath", legal, codes=(201,))


SUCCESS = {"cp": b"Files were successfully copied.", "mv": b"Files were successfully moved.",
           "rm": b"Files were successfully deleted.", "compress": b"Files were successfully compressed.",
           "extract": b"Files were successfully extracted."}


@pytest.mark.parametrize("h,op", TRANSFER_CASES)
def test_transfer_job(h, op):
    o = JOBS.result(f"transfer-{op}", h)

    def legal():
        assert o.extra.get("job_id") not in JOBS.unfinished, (
            "the transfer job did not finish within the time budget (Slurm queue)")
        assert SUCCESS[op] in o.extra.get("log", b""), (
            f"job log: {o.extra.get('log')!r:.300} err: {o.extra.get('errlog')!r:.300}")
        src, out = o.extra["src_after"], o.extra["out_after"]
        if op == "cp":
            assert (src, out, o.extra.get("target_content")) == (sorted([h.raw, b"keep", b"out"]), [h.raw], CONTENT)
        elif op == "mv":
            assert (src, out, o.extra.get("target_content")) == ([b"keep", b"out"], [h.raw], CONTENT)
        elif op == "rm":
            assert src == [b"keep", b"out"]
        elif op == "compress":
            assert o.extra.get("members") == [(h.raw, CONTENT)]
        else:
            assert (out, o.extra.get("target_content")) == ([h.raw], CONTENT)

    expect(o, h, PATH_FIELDS + ("targetPath", "target_path"), f"transfer {op}", legal,
           codes=(200,) if op == "rm" else (201,))


def test_zz_no_marker_file_anywhere():
    """Runs last: no shell payload of the table was executed anywhere."""
    if JOBS.thread is not None:
        JOBS.thread.join(timeout=420)
    found = H.markers_found()
    assert not found, f"injected commands ran: {found}"
