"""Trainings in fresh processes, for the tools that run many (loso_sweep, make_packs).

Each call gets a spawned process of its own — a fresh TensorFlow, whose thread pools cannot be
resized once it has run anything — and ``threads = cpu_count // jobs``, so ``jobs`` trainings at once
do not oversubscribe the cores.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os


def limit_threads(threads) -> None:
    """Cap TensorFlow's thread pools; call first thing in the process, before TensorFlow runs anything."""
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def in_fresh_processes(calls: dict, jobs: int, threads: int | None = None):
    """Start ``calls`` (key → ``(function, *args)``, the function taking ``threads=`` too) ``jobs`` at a
    time, one spawned process each, and return an iterator of ``(key, result, error)`` as each
    finishes, ``error`` a one-line ``"Type: message"`` (or ``None``) — one failure does not stop the
    others. Each process gets ``threads`` TensorFlow threads (default: cpu_count / jobs). The processes
    start at the call, so the caller can do other work before iterating."""
    if not calls:
        return iter(())
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(min(jobs, len(calls)), mp_context=context, max_tasks_per_child=1)
    futures = {pool.submit(fn, *args, threads=threads): key for key, (fn, *args) in calls.items()}
    return _results(pool, futures)


def _results(pool, futures):
    with pool:
        for future in concurrent.futures.as_completed(futures):
            try:
                yield futures[future], future.result(), None
            except Exception as exc:
                yield futures[future], None, f"{type(exc).__name__}: {' '.join(str(exc).split())}"
