"""Wait until a running service is ready, GET one path and print the JSON answer.

``python -m nlp182.server.probe http://127.0.0.1:8182 '/v1/neighbors?word=king&k=10'`` is what
``make demo`` runs against the gunicorn server it started in the background. Standard library
only. Exit status: 0 on a 2xx answer, 1 on an error answer (printed too), 2 if the server never
became ready.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def wait_ready(base_url: str, timeout_s: float) -> bool:
    """Poll ``/readyz`` until it answers 200 or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    return False


def fetch(base_url: str, path: str) -> tuple[int, object]:
    """GET ``path``; returns (status, decoded JSON body), error statuses included."""
    try:
        with urllib.request.urlopen(f"{base_url}{path}", timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def main(argv: list[str] | None = None) -> int:
    """Run the probe; return the exit status above."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="e.g. http://127.0.0.1:8182")
    parser.add_argument("path", help="e.g. '/v1/neighbors?word=king&k=10'")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for /readyz")
    args = parser.parse_args(argv)
    base_url = args.base_url.rstrip("/")
    if not wait_ready(base_url, args.timeout):
        print(f"server at {base_url} was not ready within {args.timeout:.0f} s", file=sys.stderr)
        return 2
    status, body = fetch(base_url, args.path)
    print(f"GET {args.path} -> {status}")
    print(json.dumps(body, indent=2))
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
