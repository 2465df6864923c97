"""Fixtures of the FirecREST v1 tests: pyfirecrest's v1 clients (`firecrest.v1.Firecrest` and
`AsyncFirecrest`) and its v1 CLI, against the dev environment's Ironcrest, which serves v1
under `<IRONCREST_DEV_URL>/v1`. The tests run as root on the cluster's machine, so they
prepare and inspect fireuser's files directly (the `workdir` fixture of tests/python)."""

import os
import pwd

import firecrest
import pytest
from firecrest.v1 import AsyncFirecrest, Firecrest

SYSTEM = "cluster-slurm-ssh"
FIREUSER = pwd.getpwnam("fireuser")
V1_URL = os.environ["IRONCREST_DEV_URL"].rstrip("/") + "/v1"
# Jobs that must run to their end go to the dev cluster's reservation for fireuser, so that
# other tests' queued jobs do not hold them up.
RESERVATION = os.environ.get("IRONCREST_DEV_SLURM_RESERVATION", "fire_resv")
RUN_NOW = f"#SBATCH --reservation={RESERVATION}\n"


def auth():
    return firecrest.ClientCredentialsAuth(
        os.environ["IRONCREST_DEV_CLIENT_ID"],
        os.environ["IRONCREST_DEV_CLIENT_SECRET"],
        os.environ["IRONCREST_DEV_OIDC_TOKEN_URL"],
    )


def own(path):
    os.lchown(path, FIREUSER.pw_uid, FIREUSER.pw_gid)


def write(path, content):
    with open(path, "wb") as f:
        f.write(content)
    own(path)
    return path


@pytest.fixture(scope="module")
def v1():
    """The sync v1 client; it learns the API level from `/status/parameters`."""
    return Firecrest(firecrest_url=V1_URL, authorization=auth())


@pytest.fixture
def v1_async():
    """A new async v1 client per test (its HTTP session is bound to the test's loop)."""
    client = AsyncFirecrest(firecrest_url=V1_URL, authorization=auth())
    # Its default spaces requests to one service by a second; nothing here needs that.
    client.time_between_calls = {service: 0 for service in client.time_between_calls}
    return client
