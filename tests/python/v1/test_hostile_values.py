"""The hostile-value table (tests/python/hostile.py) through FirecREST v1's routes: one table,
both wires. Every value of a kind goes through the v1 routes that take that kind — file names
through the utilities' queries and forms (bytes, so names that are not UTF-8 too), path
components through `mkdir -p`, upload file names through `utilities/upload`, modes, owners and
groups through `chmod`/`chown`, environment names and values through `compute/jobs/upload`
(held jobs, inspected where Slurm keeps them, cancelled through v1) — by raw httpx, which
writes exactly the bytes asked for.

Checks, as for v2: never a 5xx; a legal value round-trips byte-exact (on disk as root sees it,
in the job's stored environment, in the JSON output); an illegal one gets a 4xx whose v1 error
(`error`) names the field or quotes the value; and no marker file of this run exists anywhere
at the end."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import shutil
import subprocess
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field

import firecrest
import httpx
import pytest

import hostile as H
from hostile import (
    CHMOD_MODE, ENV_KEY, ENV_VALUE, FILE_NAME, GROUP, ILLEGAL, LEGAL, OWNER, PATH_COMPONENT,
    UPLOAD_FILENAME, cases,
)

from .conftest import FIREUSER, SYSTEM, V1_URL, own

BASE = f"{FIREUSER.pw_dir}/py-hostile-v1-{H.RUN}"
CONTENT = b"line1\nline2\nhostile\n"
WORKERS = 8
PATH_FIELDS = ("targetPath", "sourcePath", "linkPath", "path")
STATE = os.path.join(os.environ.get("IRONCREST_DEV_PREFIX", "/tmp/ironcrest-dev"), "slurm", "state")
HELD_SCRIPT = "#!/bin/bash\n#SBATCH --hold\n#SBATCH --output=/dev/null\ntrue\n"


@dataclass
class Outcome:
    status: int | None
    body: object = None
    content: bytes = b""
    error: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def message(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("error") or self.body.get("description"))
        return self.error or self.content[:300].decode(errors="replace")

    @property
    def output(self):
        return self.body.get("output") if isinstance(self.body, dict) else None

    def __str__(self):
        return f"status={self.status} error={self.message[:400]!r}"


class Api:
    def __init__(self):
        self.auth = firecrest.ClientCredentialsAuth(
            os.environ["IRONCREST_DEV_CLIENT_ID"],
            os.environ["IRONCREST_DEV_CLIENT_SECRET"],
            os.environ["IRONCREST_DEV_OIDC_TOKEN_URL"],
        )
        self.http = httpx.Client(timeout=60)

    def __call__(self, method, path, query=None, form=None, **kwargs) -> Outcome:
        url = V1_URL + path
        if query:
            url += "?" + encoded(query)
        headers = {
            "Authorization": f"Bearer {self.auth.get_access_token()}",
            "X-Machine-Name": SYSTEM,
        }
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            kwargs["content"] = encoded(form)
        try:
            resp = self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as e:
            return Outcome(None, error=f"{type(e).__name__}: {e}")
        try:
            body = resp.json()
        except Exception:
            body = None
        return Outcome(resp.status_code, body, resp.content)


def encoded(pairs: dict) -> str:
    """`k=v&…`, each value's bytes percent-encoded exactly."""
    def quote(value):
        return urllib.parse.quote_from_bytes(value if isinstance(value, bytes) else value.encode(), safe="")
    return "&".join(f"{k}={quote(v)}" for k, v in pairs.items())


API: Api | None = None


@pytest.fixture(scope="module", autouse=True)
def state():
    global API
    API = Api()
    mkdirs(BASE)
    yield
    cancel_left_over_jobs()
    if not os.environ.get("HOSTILE_KEEP"):
        shutil.rmtree(BASE, ignore_errors=True)


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
        except FileExistsError:
            continue
        own(p)
    return path


def write(path, content=CONTENT):
    with open(b(path), "wb") as f:
        f.write(content)
    own(b(path))


def creatable(h) -> bool:
    return h.expect != ILLEGAL and b"\0" not in h.raw and len(h.raw) <= 255


def workdir(route, h) -> bytes:
    d = mkdirs(f"{BASE}/{route}/{H.TABLE.index(h):03d}")
    write(d + b"/keep", b"keep\n")
    return d


def prepared(route, h):
    """A fresh directory holding `keep` and (if it can exist) the file `<value>`."""
    d = workdir(route, h)
    p = d + b"/" + h.raw
    if creatable(h):
        write(p)
    return d, p


# -- the verdict ----------------------------------------------------------------------------


def no_5xx(o: Outcome, what):
    assert o.status is not None, f"{what}: no HTTP status: {o.error}"
    assert o.status < 500, f"{what}: {o}"


def names_field(o: Outcome, fields, value) -> bool:
    message = o.message
    for f in fields:
        if re.search(rf"(?<![A-Za-z]){re.escape(f)}(?![A-Za-z])", message, re.I):
            return True
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    visible = "".join(ch for ch in value if ch.isprintable())
    return len(visible) >= 3 and visible in "".join(ch for ch in message if ch.isprintable())


def expect(o: Outcome, h, fields, what, check_legal, codes=(200, 201, 204)):
    no_5xx(o, what)
    if h.expect == LEGAL or (h.expect != ILLEGAL and 200 <= o.status < 300):
        assert o.status in codes, f"{what}: legal {h!r} refused: {o}"
        check_legal()
    else:
        assert 400 <= o.status < 500, f"{what}: illegal {h!r} accepted: {o}"
        assert names_field(o, fields, h.value), f"{what}: the 4xx names neither {fields} nor the value: {o}"


# -- a route's values run concurrently on first use ---------------------------------------------

ROUTES: dict = {}
RESULTS: dict = {}


def route(name, entries):
    def register(fn):
        ROUTES[name] = (fn, entries)
        return fn
    return register


def run_one(fn, h):
    try:
        return fn(h)
    except BaseException as e:
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


NAMES = [h for h in cases(FILE_NAME) if not h.id.startswith("mkname-")]
LEGAL_NAMES = [h for h in NAMES if h.expect == LEGAL]


# -- reads: the value as `targetPath`/`sourcePath` of a query ---------------------------------


def read(op, query_field="targetPath", **extra):
    def run(h):
        d, p = prepared(op, h)
        o = API("GET", f"/utilities/{op}", {query_field: p, **extra})
        o.extra.update(d=d, p=p)
        return o
    return run


# Every query of the utilities decodes its path alike: four of them suffice.
for op in ("ls", "stat", "head"):
    route(op, NAMES)(read(op))
route("download", NAMES)(read("download", "sourcePath"))


@route("ls-dir", LEGAL_NAMES)
def _ls_dir(h):
    d, _ = prepared("ls-dir", h)
    return API("GET", "/utilities/ls", {"targetPath": d, "showhidden": "true"})


@pytest.mark.parametrize("h", params(LEGAL_NAMES))
def test_ls_lists_the_name_exactly(h):
    o = result("ls-dir", h)
    expect(o, h, PATH_FIELDS, "ls", lambda: None)
    names = sorted(f["name"] for f in o.output)
    if h.is_text:
        assert names == sorted([h.value, "keep"]), names
    else:
        assert len(names) == 2, names


@pytest.mark.parametrize("h", params(NAMES))
def test_reads(h):
    checks = {
        "ls": lambda o: len(o.output) == 1 or pytest.fail(str(o.output)),
        "stat": lambda o: (o.output["ino"], o.output["size"]) == (os.lstat(o.extra["p"]).st_ino, len(CONTENT)) or pytest.fail(str(o.output)),
        "head": lambda o: o.output == CONTENT.decode() or pytest.fail(repr(o.output)),
        "download": lambda o: o.content == CONTENT or pytest.fail(repr(o.content[:100])),
    }
    for op, check in checks.items():
        o = result(op, h)
        expect(o, h, PATH_FIELDS, op, lambda o=o, check=check: check(o))


# -- changes: the value in a form (every form decodes alike: mkdir, rm, rename and copy run it)


@route("mkdir", cases(FILE_NAME))
def _mkdir(h):
    d = workdir("mkdir", h)
    o = API("POST", "/utilities/mkdir", form={"targetPath": d + b"/" + h.raw})
    o.extra.update(after=sorted(os.listdir(d)))
    return o


@pytest.mark.parametrize("h", params(cases(FILE_NAME)))
def test_mkdir(h):
    o = result("mkdir", h)
    expect(o, h, PATH_FIELDS, "mkdir", lambda: sorted(o.extra["after"]) == sorted([h.raw, b"keep"]) or pytest.fail(str(o.extra["after"])))


@route("mkdir-p", cases(PATH_COMPONENT))
def _mkdir_parents(h):
    d = workdir("mkdir-p", h)
    target = d + b"/" + h.raw + b"/leaf"
    o = API("POST", "/utilities/mkdir", form={"targetPath": target, "p": "True"})
    o.extra.update(target=target)
    return o


@pytest.mark.parametrize("h", params(cases(PATH_COMPONENT)))
def test_mkdir_parents_with_a_hostile_component(h):
    o = result("mkdir-p", h)
    expect(o, h, PATH_FIELDS, "mkdir -p", lambda: os.path.isdir(o.extra["target"]) or pytest.fail("not made"))


@route("rm", NAMES)
def _rm(h):
    d, p = prepared("rm", h)
    o = API("DELETE", "/utilities/rm", form={"targetPath": p})
    o.extra.update(after=sorted(os.listdir(d)))
    return o


@pytest.mark.parametrize("h", params(NAMES))
def test_rm(h):
    o = result("rm", h)
    expect(o, h, PATH_FIELDS, "rm", lambda: o.extra["after"] == [b"keep"] or pytest.fail(str(o.extra["after"])))
    assert b"keep" in o.extra["after"], "rm removed a sibling"


@route("rename", NAMES)
def _rename(h):
    d, p = prepared("rename", h)
    o = API("PUT", "/utilities/rename", form={"sourcePath": p, "targetPath": d + b"/moved"})
    o.extra.update(after=sorted(os.listdir(d)))
    return o


@pytest.mark.parametrize("h", params(NAMES))
def test_rename(h):
    o = result("rename", h)
    expect(o, h, PATH_FIELDS, "rename",
           lambda: o.extra["after"] == [b"keep", b"moved"] or pytest.fail(str(o.extra["after"])))


@route("copy", NAMES)
def _copy(h):
    d, p = prepared("copy", h)
    o = API("POST", "/utilities/copy", form={"sourcePath": p, "targetPath": d + b"/copy"})
    o.extra.update(copy=d + b"/copy")
    return o


@pytest.mark.parametrize("h", params(NAMES))
def test_copy(h):
    o = result("copy", h)

    def legal():
        with open(o.extra["copy"], "rb") as f:
            assert f.read() == CONTENT

    expect(o, h, PATH_FIELDS, "copy", legal)


@route("upload", cases(UPLOAD_FILENAME))
def _upload(h):
    d = workdir("upload", h)
    # httpx encodes the multipart file name as pyfirecrest sends it.
    o = API("POST", "/utilities/upload", data={"targetPath": os.fsdecode(d)}, files={"file": (h.value, CONTENT)})
    o.extra.update(d=d)
    return o


UPLOADS = [h for h in cases(UPLOAD_FILENAME) if h.is_text and not re.search(r"%(?:[01][0-9a-fA-F]|22)", h.value)]


@pytest.mark.parametrize("h", params(UPLOADS))
def test_upload_file_names(h):
    o = result("upload", h)

    def legal():
        with open(o.extra["d"] + b"/" + h.raw, "rb") as f:
            assert f.read() == CONTENT

    expect(o, h, ("file", "filename", "name"), "upload", legal)


# -- modes, owners, groups ----------------------------------------------------------------------


@route("chmod-mode", cases(CHMOD_MODE))
def _chmod_mode(h):
    d = workdir("chmod-mode", h)
    write(p := d + b"/target")
    before = os.stat(p).st_mode
    o = API("PUT", "/utilities/chmod", form={"targetPath": p, "mode": h.raw})
    o.extra.update(before=before, after=os.stat(p).st_mode)
    return o


@pytest.mark.parametrize("h", params(cases(CHMOD_MODE)))
def test_chmod_modes(h):
    o = result("chmod-mode", h)
    expect(o, h, ("mode",), "chmod mode", lambda: None)
    if not 200 <= o.status < 300:
        assert o.extra["before"] == o.extra["after"], "a refused mode changed the file"


def _chown(kind):
    def run(h):
        d = workdir(f"chown-{kind}", h)
        write(p := d + b"/target")
        o = API("PUT", "/utilities/chown", form={"targetPath": p, kind: h.raw})
        o.extra.update(stat=os.stat(p))
        return o
    return run


route("chown-owner", cases(OWNER))(_chown("owner"))
route("chown-group", cases(GROUP))(_chown("group"))


@pytest.mark.parametrize("h", params(cases(OWNER)))
def test_chown_owners(h):
    o = result("chown-owner", h)
    expect(o, h, ("owner",), "chown owner", lambda: o.extra["stat"].st_uid == FIREUSER.pw_uid or pytest.fail("owner"))


@pytest.mark.parametrize("h", params(cases(GROUP)))
def test_chown_groups(h):
    o = result("chown-group", h)
    expect(o, h, ("group",), "chown group", lambda: None)


# -- environments of jobs -------------------------------------------------------------------


def stored_environment(job_id) -> dict[bytes, bytes] | None:
    """The environment sbatch handed to slurmctld (uint32 count, then NUL-separated K=V)."""
    try:
        with open(f"{STATE}/hash.{int(job_id) % 10}/job.{job_id}/environment", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return dict(item.split(b"=", 1) for item in data[4:].split(b"\0") if b"=" in item)


SUBMITTED: list[str] = []


def submit(h, env):
    """A held job of `env` (as a JSON object), its stored environment, then cancelled."""
    o = API(
        "POST", "/compute/jobs/upload",
        data={"env": json.dumps(env)},
        files={"file": ("job.sh", HELD_SCRIPT.encode())},
    )
    if o.status != 201:
        return o
    task = API("GET", f"/tasks/{o.body['task_id']}")
    o.extra.update(task=task.body["task"])
    if task.body["task"]["status"] == "200":
        job_id = str(task.body["task"]["data"]["jobid"])
        SUBMITTED.append(job_id)
        for _ in range(40):
            environ = stored_environment(job_id)
            if environ is not None:
                break
            time.sleep(0.25)
        o.extra.update(environ=environ)
        API("DELETE", f"/compute/jobs/{job_id}")
    return o


route("env-key", cases(ENV_KEY))(lambda h: submit(h, {h.value: f"value-{h.id}"}))
route("env-value", cases(ENV_VALUE))(lambda h: submit(h, {"HOSTILE_VALUE": h.value}))


def job_outcome(o: Outcome) -> Outcome:
    """A submission whose task failed is a refusal, as v2 answers it: the task's message."""
    task = o.extra.get("task")
    if task and task["status"] == "400":
        return Outcome(400, {"error": task["data"]})
    return o


@pytest.mark.parametrize("h", params(cases(ENV_KEY)))
def test_environment_names(h):
    o = job_outcome(result("env-key", h))
    expect(o, h, ("env", "environment"), "env key",
           lambda: o.extra["environ"].get(h.raw) == f"value-{h.id}".encode() or pytest.fail(str(o.extra["environ"])))


@pytest.mark.parametrize("h", params(cases(ENV_VALUE)))
def test_environment_values(h):
    o = job_outcome(result("env-value", h))
    expect(o, h, ("env", "environment", "HOSTILE_VALUE"), "env value",
           lambda: o.extra["environ"].get(b"HOSTILE_VALUE") == h.raw or pytest.fail(str(o.extra["environ"])))


def cancel_left_over_jobs():
    for job_id in SUBMITTED:
        subprocess.run(["scancel", job_id], capture_output=True)


def test_zz_no_marker_file_exists():
    """Runs last: no value anywhere ran as a command."""
    assert H.markers_found() == []
