#!/usr/bin/env python
"""Launch N local ``MultiWorkerMirroredStrategy`` workers on loopback, each running one command.

    python tools/launch_workers.py -n 2 -- zoo train convnet-digits --strategy multiworker --out runs/mw

Each worker gets a ``TF_CONFIG`` naming every worker's 127.0.0.1 port and its own index; worker 0 is
the chief (it writes ``--out``). The exit status is the first non-zero worker status, else 0.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys


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
           capture: bool = False) -> list[subprocess.CompletedProcess]:
    """Run ``command`` as ``n`` workers of one cluster; returns their completed processes."""
    workers = [f"127.0.0.1:{p}" for p in free_ports(n)]
    procs = []
    for index in range(n):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        worker_env = dict(os.environ, **(env or {}), TF_CONFIG=json.dumps(tf_config))
        procs.append(subprocess.Popen(command, env=worker_env, text=True,
                                      stdout=subprocess.PIPE if capture else None,
                                      stderr=subprocess.PIPE if capture else None))
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command each worker runs")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    results = launch(command, args.workers, timeout=args.timeout)
    return next((r.returncode for r in results if r.returncode), 0)


if __name__ == "__main__":
    sys.exit(main())
