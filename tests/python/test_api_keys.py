"""pyfirecrest's ApiKeyAuth (header X-API-Key) against the dev environment's API key, made
for fireuser by `scripts/dev-env up` with `ironcrest api-key create`."""

import os

import firecrest
import httpx
import pytest
from firecrest.v2 import Firecrest

SYSTEM = "cluster-slurm-ssh"


@pytest.fixture(scope="module")
def key():
    with open(os.environ["IRONCREST_DEV_API_KEY_FILE"]) as f:
        return f.read().strip()


def test_api_key_auth_lists_files_and_names_the_user(key, workdir):
    client = Firecrest(firecrest_url=os.environ["IRONCREST_DEV_URL"], authorization=firecrest.ApiKeyAuth(key))
    assert client.userinfo(SYSTEM)["user"]["name"] == "fireuser"
    client.mkdir(SYSTEM, f"{workdir}/made-with-a-key")
    names = [entry["name"] for entry in client.list_files(SYSTEM, workdir)]
    assert names == ["made-with-a-key"]


def test_a_wrong_key_is_401(key):
    wrong = key[:-1] + ("0" if key[-1] != "0" else "1")
    response = httpx.get(
        f"{os.environ['IRONCREST_DEV_URL']}/status/{SYSTEM}/userinfo", headers={"X-API-Key": wrong}
    )
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid API key"
