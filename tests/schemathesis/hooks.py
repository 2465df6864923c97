"""Schemathesis hooks for tests/schemathesis/run: keep every generated request harmless.

Loaded with SCHEMATHESIS_HOOKS. Schemathesis generates whatever the document allows, and the
server runs it for real on the cluster as fireuser, so just before each call:

- every path-like value (`path`, `sourcePath`, `targetPath`, `linkPath`, `workingDirectory`,
  `standardOutput`, `scriptPath`, ..., in the query and anywhere in a JSON body) is rewritten to
  lie under the scratch directory: either one of the seeded entries or scratch + "/" + the
  generated text with `/` replaced, so hostile bytes (quotes, spaces, `$(...)`, NUL, non-UTF-8
  escapes, long names) still reach the server, but only as one name inside the scratch dir;
- `system_name` becomes the configured system, except for a deterministic few that keep the
  generated value (unknown systems are a real 404 case);
- a batch script that would run (it starts with `#!`) becomes `#!/bin/bash\\ntrue`, while empty
  and shebang-less scripts are kept: the server must answer those with a 4xx;
- an attach command becomes `echo <the generated text, shell-quoted>`;
- once IRONCREST_SCHEMATHESIS_JOB_BUDGET requests that start jobs (job submissions, transfer
  jobs, attach) were accepted, further ones are sent to an unknown system, whose answer (404)
  every check allows: the coverage, shrinking and stateful phases are not bounded by
  --max-examples, and every accepted transfer request queues a real Slurm job;
- the id (and a transfer job's log files) of every job an accepted request started is appended
  to IRONCREST_SCHEMATHESIS_JOBS, so that tests/schemathesis/run cancels exactly those.

Values that are not strings (a negative case's wrong type) and empty strings are left as
generated: they are the error cases the server must reject. Schemathesis re-validates a case a
hook modified, so the positive/negative label of each case stays true to what is sent.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import threading
import zlib
from typing import Any

import schemathesis

SCRATCH = os.environ["IRONCREST_SCHEMATHESIS_SCRATCH"].rstrip("/")
SYSTEMS = [s for s in os.environ.get("IRONCREST_SCHEMATHESIS_SYSTEMS", "cluster-slurm-ssh").split(",") if s]
# Entries tests/schemathesis/run seeds into the scratch directory.
SEEDS = [
    "file.txt",
    "empty.txt",
    "subdir",
    "subdir/nested.txt",
    "link-to-file",
    "archive.tar.gz",
    "job.sh",
    "name with spaces & 'quotes'.txt",
]
# Keys (lower-cased, without `_`/`-`) whose values are paths on the cluster.
PATH_KEYS = {
    "path",
    "sourcepath",
    "targetpath",
    "linkpath",
    "scriptpath",
    "workingdirectory",
    "currentworkingdirectory",
    "standardinput",
    "standardoutput",
    "standarderror",
    "directory",
    "dir",
    "cwd",
}
HARMLESS_SCRIPT = "#!/bin/bash\ntrue\n"
JOB_BUDGET = int(os.environ.get("IRONCREST_SCHEMATHESIS_JOB_BUDGET", "30"))
JOBS_FILE = os.environ.get("IRONCREST_SCHEMATHESIS_JOBS")
BUDGET_SPENT_SYSTEM = "schemathesis-job-budget-spent"
# Operations (method, path template) whose accepted requests start a job or run in one.
JOB_STARTING = re.compile(
    r"^(POST /compute/\{system_name\}/jobs"
    r"|PUT /compute/\{system_name\}/jobs/\{job_id\}/attach"
    r"|(POST|DELETE) /filesystem/\{system_name\}/transfer/.*)$"
)
_lock = threading.Lock()
_jobs_started = 0


def _starts_jobs(case: Any) -> bool:
    return bool(JOB_STARTING.match(f"{str(case.method).upper()} {case.path}"))


def _norm(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _digest(value: str) -> int:
    return zlib.crc32(value.encode("utf-8", "surrogatepass"))


def confine(value: Any) -> Any:
    """A path under the scratch directory, derived deterministically from the generated one."""
    if isinstance(value, list):
        return [confine(v) for v in value]
    if not isinstance(value, str) or value == "":
        return value
    h = _digest(value)
    if value.startswith(SCRATCH + "/") and ".." not in value:
        return value
    choice = h % 8
    if choice < 3:
        # An existing entry, so that operations also succeed.
        return f"{SCRATCH}/{SEEDS[(h >> 3) % len(SEEDS)]}"
    name = value.replace("/", "_")[:200]
    if name in (".", ".."):
        name = "dot" + name
    if choice == 3:
        # A `..` that normalises back into the scratch directory.
        return f"{SCRATCH}/subdir/../{name}"
    if choice == 4:
        # A trailing slash and a doubled one.
        return f"{SCRATCH}//{name}/"
    return f"{SCRATCH}/{name}"


def _confine_tree(value: Any) -> Any:
    """Confine every path-like value of a JSON body, at any depth."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and _norm(key) in PATH_KEYS:
                out[key] = confine(item)
            else:
                out[key] = _confine_tree(item)
        return out
    if isinstance(value, list):
        return [_confine_tree(v) for v in value]
    return value


def _defuse_job(job: Any) -> None:
    if not isinstance(job, dict):
        return
    script = job.get("script")
    if isinstance(script, str) and script.startswith("#!"):
        job["script"] = HARMLESS_SCRIPT


@schemathesis.hook
def before_call(context, case, kwargs):  # noqa: ARG001 - the hook's signature
    if case.path_parameters:
        params = dict(case.path_parameters)
        name = params.get("system_name")
        if isinstance(name, str):
            h = _digest(name)
            if h % 8 != 7:
                params["system_name"] = SYSTEMS[(h >> 3) % len(SYSTEMS)]
        if _starts_jobs(case):
            with _lock:
                if _jobs_started >= JOB_BUDGET:
                    params["system_name"] = BUDGET_SPENT_SYSTEM
        case.path_parameters = params
    # A long poll waits up to `wait` seconds for a running job: keep it well inside the
    # request timeout (the long poll's own tests are integration tests).
    wait = (case.query or {}).get("wait")
    if isinstance(wait, int) and wait > 5:
        case.query = {**case.query, "wait": 5}
    # `until` needs a `wait` (a 400 otherwise), a rule between two parameters that OpenAPI
    # cannot state: without a wait, leave `until` out.
    if case.query and "until" in case.query and not (isinstance(wait, int) and wait > 0):
        case.query = {key: value for key, value in case.query.items() if key != "until"}
    if case.query:
        case.query = {
            key: confine(value) if isinstance(key, str) and _norm(key) in PATH_KEYS else value
            for key, value in case.query.items()
        }
    body = case.body
    if isinstance(body, (dict, list)):
        body = _confine_tree(body)
        if isinstance(body, dict):
            if case.path.endswith("/jobs"):
                _defuse_job(body)
                _defuse_job(body.get("job"))
            if case.path.endswith("/attach") and isinstance(body.get("command"), str):
                body["command"] = "echo " + shlex.quote(body["command"])
        # Only a changed body is set: Schemathesis re-validates a body that was set, and it
        # cannot validate one holding bytes (the upload's multipart form), which it would
        # then count as invalid and expect the server to refuse.
        if body != case.body:
            case.body = body


@schemathesis.hook
def after_call(context, case, response):  # noqa: ARG001 - the hook's signature
    global _jobs_started
    if not _starts_jobs(case) or not 200 <= response.status_code < 300:
        return
    with _lock:
        _jobs_started += 1
    try:
        data = json.loads(response.content)
    except ValueError:
        return
    job_id, logs = None, []
    if isinstance(data, dict):
        job_id = data.get("jobId")
        transfer_job = data.get("transferJob")
        if job_id is None and isinstance(transfer_job, dict):
            job_id = transfer_job.get("jobId")
            if isinstance(transfer_job.get("logs"), dict):
                logs = [v for v in transfer_job["logs"].values() if isinstance(v, str)]
    if JOBS_FILE and job_id is not None and re.fullmatch(r"[0-9]+", str(job_id)):
        # One line a job: its id, then the log files a transfer job writes.
        line = "\t".join([str(job_id), *(log for log in logs if "\t" not in log and "\n" not in log)])
        with _lock, open(JOBS_FILE, "a", encoding="utf-8") as jobs:
            jobs.write(line + "\n")
