#!/usr/bin/env python
"""Launch N local ``MultiWorkerMirroredStrategy`` workers on loopback, each running one command.

    python tools/launch_workers.py -n 2 -- zoo train convnet-digits --strategy multiworker --out runs/mw

Each worker gets a ``TF_CONFIG`` naming every worker's 127.0.0.1 port and its own index; worker 0 is
the chief (it writes ``--out``). The exit status is the first non-zero worker status, else 0.

When one worker fails the others are stopped at once: its peers would otherwise wait for it until
the timeout. The ports are free when picked but only bound later by TensorFlow, so another process
can take one in between (tensorflow/tensorflow#46602); a run whose worker could not bind its port is
started again on new ports, up to ``--attempts`` times.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

BIND_ERRORS = ("Address already in use", "Failed to add any wildcard listeners", "No address added out of total")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def launch(command: list[str], n: int, env: dict | None = None, timeout: float | None = None,
           attempts: int = 3) -> list[subprocess.CompletedProcess]:
    """Run ``command`` as ``n`` workers of one cluster; returns their completed processes, whose
    ``stderr`` is also echoed to this process's stderr (stdout goes straight through)."""
    for attempt in range(1, attempts + 1):
        results = _launch_once(command, n, env, timeout)
        for r in results:
            sys.stderr.write(r.stderr)
        collided = any(r.returncode and any(e in r.stderr for e in BIND_ERRORS) for r in results)
        if not collided or attempt == attempts:
            return results
        print(f"launch_workers: a worker could not bind its port; attempt {attempt + 1} of {attempts} on new ports",
              file=sys.stderr, flush=True)


def _launch_once(command, n, env, timeout) -> list[subprocess.CompletedProcess]:
    workers = [f"127.0.0.1:{p}" for p in free_ports(n)]
    deadline = None if timeout is None else time.monotonic() + timeout
    with tempfile.TemporaryDirectory() as tmp:
        procs, logs = [], []
        try:
            for index in range(n):
                tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
                log = open(os.path.join(tmp, f"{index}.err"), "w+")  # a file, not a pipe: it never fills up
                logs.append(log)
                procs.append(subprocess.Popen(command, env=dict(os.environ, **(env or {}), TF_CONFIG=json.dumps(tf_config)),
                                              text=True, stderr=log))
            while any(p.poll() is None for p in procs):
                if any(p.poll() for p in procs):  # one failed: its peers would wait for it forever
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(command, timeout)
                time.sleep(0.2)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        results = []
        for proc, log in zip(procs, logs):
            log.seek(0)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, None, log.read()))
            log.close()
        return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--attempts", type=int, default=3, help="launches to try when a worker cannot bind its port")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command each worker runs")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    if args.attempts < 1:
        parser.error("--attempts must be at least 1")
    results = launch(command, args.workers, timeout=args.timeout, attempts=args.attempts)
    return next((r.returncode for r in results if r.returncode), 0)


if __name__ == "__main__":
    sys.exit(main())
