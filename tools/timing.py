"""Wall and CPU time for the measurement tools: the CPU may be shared with other jobs, so every
figure records process CPU time (user + system, this process and its finished children) beside
wall time. Tools run as ``python tools/NAME.py``, which puts this folder on ``sys.path``."""
from __future__ import annotations

import resource
import time


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Timer:
    """``with Timer() as t: ...`` then ``t.wall`` and ``t.cpu`` in seconds."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = cpu_seconds() - self.cpu

    def as_dict(self):
        return dict(wall_seconds=round(self.wall, 1), cpu_seconds=round(self.cpu, 1))
