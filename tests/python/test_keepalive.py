"""One keep-alive connection carrying thousands of mixed requests under CPU load.

A single pooled connection (httpx, pool of 1) sends a seeded random mix of good requests,
requests refused early (bad or forged token: 401; invalid body, path outside the file
systems: 400; unknown system: 404), many of them with a request body the server never
reads. The server must drain those bodies, so the connection stays usable: no transport
error, every status as expected, and the same TCP connection from start to end.

Nothing here runs a job or a transfer: compute and transfer POSTs carry a bad token or a
body that fails validation.
"""

import json
import os
import random
import subprocess
import sys
import time

import firecrest
import httpx
import pytest

from conftest import write

SYSTEM = "cluster-slurm-ssh"
HOME = "/home/fireuser"
REQUESTS = 5000
SEED = 20240607
TRANSPORT_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError,
                    httpx.ConnectError, httpx.TimeoutException)


def good_token():
    auth = firecrest.ClientCredentialsAuth(
        os.environ["IRONCREST_DEV_CLIENT_ID"],
        os.environ["IRONCREST_DEV_CLIENT_SECRET"],
        os.environ["IRONCREST_DEV_OIDC_TOKEN_URL"],
    )
    return auth.get_access_token()


def forge(token, rng):
    """The token with its signature broken: a few characters in the middle of the last
    segment replaced (not the last character, whose low bits may be padding)."""
    header, payload, signature = token.split(".")
    sig = list(signature)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in rng.sample(range(4, len(sig) - 4), 3):
        sig[i] = rng.choice(alphabet.replace(sig[i], ""))
    forged = "".join(sig)
    assert forged != signature
    return f"{header}.{payload}.{forged}"


def wait_for_server(url, deadline_s=60):
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if httpx.get(f"{url}/status/liveness/", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} not answering")
        time.sleep(1)


@pytest.fixture
def cpu_load():
    """Two busy-loop children for the test's duration; only these pids are killed."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=10)


def job_body(rng, workdir):
    return {
        "job": {
            "name": f"ka-{rng.randrange(10**6)}",
            "workingDirectory": workdir,
            "script": "#!/bin/bash\nhostname\n",
            "env": {"A": "1"},
        }
    }


def multipart(rng):
    size = rng.randrange(4 * 1024, 64 * 1024 + 1)
    return {"file": (f"up-{size}.bin", rng.randbytes(size), "application/octet-stream")}


def build_plan(rng, token, workdir, small):
    """(weight, name, builder): builder(rng) -> (method, url, kwargs, expected status)."""
    ops = f"/filesystem/{SYSTEM}/ops"
    good = {"Authorization": f"Bearer {token}"}

    def bad(r):
        """Half malformed ("abc"), half a real token with a broken signature."""
        return {"Authorization": f"Bearer {'abc' if r.random() < 0.5 else forge(token, r)}"}

    js = json.dumps

    broken_json = ['{"path":', "{", "not json", '{"job": [}', '{"sourcePath": "/home", }']

    return [
        # good requests
        (10, "systems", lambda r: ("GET", "/status/systems", {"headers": good}, 200)),
        (6, "ls", lambda r: ("GET", f"{ops}/ls", {"headers": good, "params": {"path": HOME}}, 200)),
        (6, "head", lambda r: ("GET", f"{ops}/head", {"headers": good, "params": {"path": small}}, 200)),
        # bad token, JSON / multipart bodies the server never reads
        (10, "chmod-401", lambda r: ("PUT", f"{ops}/chmod", {
            "headers": {**bad(r), "Content-Type": "application/json"},
            "content": js({"path": f"{workdir}/f{r.randrange(100)}", "mode": "700"})}, 401)),
        (10, "mkdir-401", lambda r: ("POST", f"{ops}/mkdir", {
            "headers": {**bad(r), "Content-Type": "application/json"},
            "content": js({"path": f"{workdir}/d{r.randrange(100)}", "parent": True})}, 401)),
        (12, "upload-401", lambda r: ("POST", f"{ops}/upload", {
            "headers": bad(r), "params": {"path": workdir}, "files": multipart(r)}, 401)),
        (10, "jobs-401", lambda r: ("POST", f"/compute/{SYSTEM}/jobs", {
            "headers": {**bad(r), "Content-Type": "application/json"},
            "content": js(job_body(r, workdir))}, 401)),
        (10, "mv-401", lambda r: ("POST", f"/filesystem/{SYSTEM}/transfer/mv", {
            "headers": {**bad(r), "Content-Type": "application/json"},
            "content": js({"sourcePath": f"{workdir}/a", "targetPath": f"{workdir}/b"})}, 401)),
        # good token, invalid JSON: 400
        (6, "invalid-json-400", lambda r: (
            *r.choice([("PUT", f"{ops}/chmod"), ("POST", f"{ops}/mkdir"),
                       ("POST", f"/compute/{SYSTEM}/jobs"),
                       ("POST", f"/filesystem/{SYSTEM}/transfer/mv")]),
            {"headers": {**good, "Content-Type": "application/json"},
             "content": r.choice(broken_json)}, 400)),
        # good token, upload to a path outside the file systems: 400 before the body is read
        (4, "upload-400", lambda r: ("POST", f"{ops}/upload", {
            "headers": good, "params": {"path": "/etc"}, "files": multipart(r)}, 400)),
        # good token, unknown system: 404 (the upload one with an unread body)
        (3, "ls-404", lambda r: ("GET", "/filesystem/no-such-system/ops/ls", {
            "headers": good, "params": {"path": HOME}}, 404)),
        (3, "upload-404", lambda r: ("POST", "/filesystem/no-such-system/ops/upload", {
            "headers": good, "params": {"path": HOME}, "files": multipart(r)}, 404)),
    ]


def test_one_keepalive_connection_survives_mixed_requests_under_load(workdir, cpu_load):
    url = os.environ["IRONCREST_DEV_URL"]
    wait_for_server(url)
    small = write(f"{workdir}/small.txt", b"one\ntwo\nthree\n")
    token = good_token()
    rng = random.Random(SEED)
    plan = build_plan(rng, token, workdir, small)
    weights = [w for w, _, _ in plan]

    counts, errors, mismatches = {}, [], []
    connections = []  # the client (local) address of each distinct connection, in order
    close_headers = 0
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    started = time.monotonic()
    with httpx.Client(base_url=url, limits=limits, timeout=30) as client:
        for i in range(REQUESTS):
            _, name, build = rng.choices(plan, weights)[0]
            method, path, kwargs, expected = build(rng)
            counts[name] = counts.get(name, 0) + 1
            try:
                response = client.request(method, path, **kwargs)
            except TRANSPORT_ERRORS as e:
                errors.append((i, name, type(e).__name__, str(e)))
                continue
            stream = response.extensions.get("network_stream")
            local = stream.get_extra_info("client_addr") if stream else None
            if not connections or connections[-1] != local:
                connections.append(local)
            if response.headers.get("connection", "").lower() == "close":
                close_headers += 1
            ok = response.status_code == expected
            if ok:
                try:
                    body = response.json()
                except ValueError:
                    ok = False
                else:
                    if expected == 200 and name == "head":
                        ok = body.get("output", {}).get("content") == "one\ntwo\nthree\n"
                    elif expected != 200:
                        ok = isinstance(body, dict) and "message" in body
            if not ok:
                mismatches.append((i, name, method, path, expected, response.status_code,
                                   response.text[:200]))
    duration = time.monotonic() - started

    disconnects = len(connections) - 1
    print(
        f"\nkeepalive: {REQUESTS} requests in {duration:.1f} s = {REQUESTS / duration:.0f} req/s;"
        f" transport errors {len(errors)}; status mismatches {len(mismatches)};"
        f" connections used {len(connections)} (disconnects {disconnects});"
        f" 'Connection: close' responses {close_headers}; busy-loop pids {cpu_load}"
    )
    print("  mix: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    for e in errors[:10]:
        print("  transport error:", e)
    for m in mismatches[:10]:
        print("  mismatch:", m)
    assert not errors, errors[:10]
    assert not mismatches, mismatches[:10]
    # Every early refusal's body was drained: the one connection carried every request.
    assert disconnects == 0 and close_headers == 0, connections
