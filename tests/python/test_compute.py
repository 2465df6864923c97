"""Jobs through the official pyfirecrest v2 client against the Ironcrest started by
`scripts/dev-env up` (Slurm 22.05 over SSH, user fireuser), and against a second Ironcrest in
`hybrid` mode (slurmrestd, with metadata, script paths and attach over SSH). The tests run as root on the
same machine, so they put scripts into, and read outputs from, fireuser's home directly."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import firecrest
import pytest
from firecrest.v2 import Firecrest

SYSTEM = "cluster-slurm-ssh"
HOME = "/home/fireuser"
PWNED = "/tmp/pwned"
RESERVATION = os.environ.get("IRONCREST_DEV_SLURM_RESERVATION", "fire_resv")


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def newest_binary():
    candidates = [os.path.join(REPO, "target", d, "ironcrest") for d in ("debug", "release")]
    candidates = [c for c in candidates if os.path.exists(c)]
    return max(candidates, key=os.path.getmtime)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=["ssh", "hybrid"])
def client(request):
    """pyfirecrest against the dev Ironcrest (Slurm over SSH), and against a second Ironcrest
    started here with the same configuration in `hybrid` mode (slurmrestd API v0.0.38)."""
    auth = firecrest.ClientCredentialsAuth(
        os.environ["IRONCREST_DEV_CLIENT_ID"],
        os.environ["IRONCREST_DEV_CLIENT_SECRET"],
        os.environ["IRONCREST_DEV_OIDC_TOKEN_URL"],
    )
    url = os.environ["IRONCREST_DEV_URL"]
    process = None
    workdir = None
    if request.param == "hybrid":
        with open(os.path.join(os.environ["IRONCREST_DEV_PREFIX"], "ironcrest", "config.yaml")) as f:
            config = f.read()
        port = free_port()
        config = config.replace(
            f"127.0.0.1:{os.environ['IRONCREST_DEV_PORT']}", f"127.0.0.1:{port}"
        ).replace(
            "connection_mode: ssh",
            "connection_mode: hybrid\n      api_url: "
            + os.environ["IRONCREST_DEV_SLURMRESTD_URL"]
            + '\n      api_version: "0.0.38"',
        )
        assert "connection_mode: hybrid" in config
        workdir = tempfile.mkdtemp(prefix="ironcrest-hybrid-")
        path = os.path.join(workdir, "config.yaml")
        with open(path, "w") as f:
            f.write(config)
        log = open(os.path.join(workdir, "ironcrest.log"), "wb")
        process = subprocess.Popen([newest_binary(), "serve", "--config", path], stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
    client = Firecrest(firecrest_url=url, authorization=auth)
    # pyfirecrest assumes API 2.4.0 and then refuses `job_info(account=...)` (2.4.2+).
    client.set_api_version("2.5.4")
    try:
        for _ in range(150):
            try:
                system = next(s for s in client.systems() if s["name"] == SYSTEM)
                health = system.get("servicesHealth") or []
                if health and all(h["healthy"] for h in health):
                    break
            except Exception:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"Ironcrest ({request.param}) never became healthy")
        yield client
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def unique(prefix):
    return os.path.join(HOME, f"{prefix}-{uuid.uuid4().hex}")


def read_when_present(path, attempts=100):
    for _ in range(attempts):
        if os.path.exists(path):
            with open(path, "rb") as f:
                return f.read()
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


def wait_for_state(client, job_id, state, attempts=400):
    for _ in range(attempts):
        try:
            jobs = client.job_info(SYSTEM, job_id)
        except firecrest.FirecrestException as e:
            if e.responses[-1].status_code != 404:
                raise
        else:
            if jobs[0]["status"]["state"] == state:
                return jobs[0]
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} never reached {state}")


def test_submit_script_string_with_env_and_account_and_wait(client):
    out = unique("pyfirecrest-env")
    value = "$(touch /tmp/pwned) 'single' \"double\" a,b"
    job = client.submit(
        SYSTEM,
        working_dir=HOME,
        script_str=f"#!/bin/bash\n#SBATCH --output=/dev/null\nprintf '%s' \"$GREETING\" > '{out}'\n",
        env_vars={"GREETING": value},
        account="project1",
    )
    job_id = job["jobId"]
    done = client.wait_for_job(SYSTEM, job_id)
    assert done[0]["status"]["state"] == "COMPLETED"
    # The exit code arrives with the accounting record, shortly after the final state.
    for _ in range(150):
        info = client.job_info(SYSTEM, job_id)
        if info[0]["status"]["exitCode"] is not None:
            break
        time.sleep(0.2)
    assert info[0]["jobId"] == job_id
    assert info[0]["account"] == "project1"
    assert info[0]["status"]["exitCode"] == 0
    assert read_when_present(out) == value.encode()
    assert not os.path.exists(PWNED)
    os.remove(out)
    # The listing (pyfirecrest sends an empty `account=`) has it too.
    assert job_id in [j["jobId"] for j in client.job_info(SYSTEM)]
    assert job_id in [j["jobId"] for j in client.job_info(SYSTEM, allusers=True)]
    assert job_id in [j["jobId"] for j in client.job_info(SYSTEM, account="project1")]
    assert job_id not in [j["jobId"] for j in client.job_info(SYSTEM, account="staff")]


def test_remote_script_metadata_attach_and_cancel(client):
    script_path = unique("pyfirecrest-script") + ".sh"
    script = f"#!/bin/bash\n#SBATCH --reservation={RESERVATION}\n#SBATCH --output=/dev/null\nsleep 120\n"
    with open(script_path, "w") as f:
        f.write(script)
    os.chmod(script_path, 0o644)
    try:
        job_id = client.submit(SYSTEM, working_dir=HOME, script_remote_path=script_path)["jobId"]
        metadata = client.job_metadata(SYSTEM, job_id)
        assert metadata[0]["jobId"] == job_id
        assert metadata[0]["script"] == script
        assert metadata[0]["standardOutput"] == "/dev/null"

        wait_for_state(client, job_id, "RUNNING")
        marker = unique("pyfirecrest-attached")
        client.attach_to_job(SYSTEM, job_id, f"echo \"$SLURM_JOB_ID\" > '{marker}'")
        assert read_when_present(marker) == f"{job_id}\n".encode()
        os.remove(marker)

        client.cancel_job(SYSTEM, job_id)
        done = client.wait_for_job(SYSTEM, job_id)
        assert done[0]["status"]["state"].startswith("CANCELLED")
        with pytest.raises(firecrest.FirecrestException) as excinfo:
            client.cancel_job(SYSTEM, job_id)
        assert excinfo.value.responses[-1].status_code == 409
    finally:
        os.remove(script_path)


def test_unknown_job_is_not_found(client):
    for call in (client.job_info, client.job_metadata, client.cancel_job):
        with pytest.raises(firecrest.FirecrestException) as excinfo:
            call(SYSTEM, "999999999")
        response = excinfo.value.responses[-1]
        assert response.status_code == 404
        assert "Job not found" in response.json()["message"]


def test_unknown_partition_is_refused_with_slurms_message(client):
    with pytest.raises(firecrest.FirecrestException) as excinfo:
        client.submit(
            SYSTEM,
            working_dir=HOME,
            script_str="#!/bin/bash\n#SBATCH --partition=nosuchpartition\ntrue\n",
        )
    response = excinfo.value.responses[-1]
    assert response.status_code == 400
    assert "Invalid partition name specified" in response.json()["message"]
