"""Shared fixtures: a pyfirecrest client of the dev environment's Ironcrest, and a fresh
directory owned by fireuser (the tests run as root on the same machine, so they prepare
and inspect fireuser's files directly)."""

import os
import pwd
import shutil
import uuid

import firecrest
import pytest
from firecrest.v2 import Firecrest

FIREUSER = pwd.getpwnam("fireuser")


def own(path):
    os.lchown(path, FIREUSER.pw_uid, FIREUSER.pw_gid)


def write(path, content):
    with open(path, "wb") as f:
        f.write(content)
    own(path)
    return path


@pytest.fixture(scope="module")
def client():
    auth = firecrest.ClientCredentialsAuth(
        os.environ["IRONCREST_DEV_CLIENT_ID"],
        os.environ["IRONCREST_DEV_CLIENT_SECRET"],
        os.environ["IRONCREST_DEV_OIDC_TOKEN_URL"],
    )
    return Firecrest(firecrest_url=os.environ["IRONCREST_DEV_URL"], authorization=auth)


@pytest.fixture
def workdir(request):
    path = f"{FIREUSER.pw_dir}/py-{request.module.__name__}-{uuid.uuid4().hex[:8]}"
    os.mkdir(path)
    own(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)
