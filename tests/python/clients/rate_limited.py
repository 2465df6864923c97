"""Drives a rate-limited Ironcrest with the real pyfirecrest client: `calls` listings in a
row from each of `threads` threads. pyfirecrest answers a 429 by sleeping `Retry-After` and
retrying, so every call must complete. Run by the Rust integration test
`limits::pyfirecrest_waits_out_429s` against its own server (IRONCREST_DEV_URL points at
it); prints one JSON line: calls made, calls completed, retries, seconds taken.

Usage: python rate_limited.py SYSTEM PATH CALLS THREADS
"""

import json
import logging
import os
import sys
import threading
import time

import firecrest
from firecrest.v2 import Firecrest


class Retries(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.count = 0
        self.counting = threading.Lock()

    def emit(self, record):
        if "Rate limit is reached" in record.getMessage():
            with self.counting:
                self.count += 1


def main():
    system, path, calls, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    retries = Retries()
    logger = logging.getLogger("firecrest")
    logger.addHandler(retries)
    logger.setLevel(logging.INFO)
    auth = firecrest.ClientCredentialsAuth(
        os.environ["IRONCREST_DEV_CLIENT_ID"],
        os.environ["IRONCREST_DEV_CLIENT_SECRET"],
        os.environ["IRONCREST_DEV_OIDC_TOKEN_URL"],
    )
    client = Firecrest(firecrest_url=os.environ["IRONCREST_DEV_URL"], authorization=auth)
    completed = []
    errors = []

    def work():
        for _ in range(calls):
            try:
                client.list_files(system, path)
                completed.append(1)
            except Exception as error:  # reported, and the test fails on it
                errors.append(repr(error))

    started = time.monotonic()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps({
        "calls": calls * threads,
        "completed": len(completed),
        "retries": retries.count,
        "seconds": round(time.monotonic() - started, 3),
        "errors": errors[:3],
    }))


if __name__ == "__main__":
    main()
