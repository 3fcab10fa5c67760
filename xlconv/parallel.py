"""Work spread over forked processes: how many (--jobs) and a map that keeps the order of its items.

`fork_map` forks its workers after the caller has prepared everything (a parsed spec, the variants), so they
start in a millisecond with all of it in memory, and hands out one item at a time so that a slow item does not
hold back the others. Results come back in the order of the items, so what the caller writes from them is the
same whatever the number of workers. An exception in a worker (an error, Ctrl-C) is raised in the caller after
every worker has been killed; a worker that dies is an error too, never a hang. Workers die with the caller.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
from typing import Callable, Sequence, TypeVar

from xlconv.errors import XlconvError

T = TypeVar("T")
R = TypeVar("R")
_HEADER = struct.Struct("!Q")
_PR_SET_PDEATHSIG = 1


def default_jobs() -> int:
    """The number of cores this process may run on (the default of --jobs)."""
    count = getattr(os, "process_cpu_count", None)  # Python 3.13
    if count is not None:
        return max(1, int(count() or 1))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


MAX_JOBS = 256


def check_jobs(value: object, where: str = "--jobs", error: type[XlconvError] = XlconvError) -> int:
    """A number of workers: an integer from 1 to MAX_JOBS; error naming where otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_JOBS:
        raise error(f"{where} must be a whole number from 1 to {MAX_JOBS}, got {value!r}")
    return value


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (best effort: nothing elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _worker(func: Callable[[T], R], items: Sequence[T], tasks: int, results: int) -> None:
    """A forked worker: run func on the items whose indices arrive on tasks; never returns."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller stops its workers itself
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        die_with_parent()
        while True:
            try:
                (i,) = _HEADER.unpack(_read_exactly(tasks, _HEADER.size))
            except EOFError:  # the caller is done, or gone
                break
            try:
                answer: tuple[str, object] = ("ok", func(items[i]))
            except BaseException as e:  # noqa: BLE001 - raised again in the caller
                answer = ("error", e)
            try:
                payload = pickle.dumps(answer)
            except Exception as e:  # noqa: BLE001 - an exception that cannot be pickled
                payload = pickle.dumps(("error", RuntimeError(f"{type(answer[1]).__name__}: {answer[1]} ({e})")))
            _write_all(results, _HEADER.pack(len(payload)) + payload)
    finally:
        os._exit(0)


def fork_map(func: Callable[[T], R], items: Sequence[T], jobs: int,
             done: Callable[[], None] | None = None) -> list[R]:
    """[func(x) for x in items], run by `jobs` forked workers (in this process when jobs is 1)."""
    jobs = min(jobs, len(items))
    if jobs <= 1:
        out = []
        for x in items:
            out.append(func(x))
            if done is not None:
                done()
        return out
    workers: dict[int, tuple[int, int]] = {}  # pid -> (task pipe to it, result pipe from it)
    results: list[R | None] = [None] * len(items)
    try:
        for _ in range(jobs):
            task_r, task_w = os.pipe()
            result_r, result_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(task_w)
                os.close(result_r)
                for _, (tw, rr) in workers.items():
                    os.close(tw)
                    os.close(rr)
                _worker(func, items, task_r, result_w)
            os.close(task_r)
            os.close(result_w)
            workers[pid] = (task_w, result_r)
        next_item = 0
        busy: dict[int, tuple[int, int]] = {}  # result pipe -> (pid, item index)
        for pid, (tw, rr) in workers.items():
            if next_item < len(items):
                _write_all(tw, _HEADER.pack(next_item))
                busy[rr] = (pid, next_item)
                next_item += 1
        while busy:
            ready, _, _ = select.select(list(busy), [], [])
            for rr in ready:
                pid, i = busy.pop(rr)
                try:
                    (n,) = _HEADER.unpack(_read_exactly(rr, _HEADER.size))
                    kind, value = pickle.loads(_read_exactly(rr, n))
                except EOFError:
                    _, status = os.waitpid(pid, 0)
                    workers[pid] = (-1, -1)  # reaped: nothing left to kill or close
                    how = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                           else f"exit status {os.waitstatus_to_exitcode(status)}")
                    raise XlconvError(f"a worker process died ({how}) on item {i + 1} of {len(items)}; "
                                      f"nothing was written") from None
                if kind == "error":
                    assert isinstance(value, BaseException)
                    raise value
                results[i] = value
                if done is not None:
                    done()
                if next_item < len(items):
                    _write_all(workers[pid][0], _HEADER.pack(next_item))
                    busy[rr] = (pid, next_item)
                    next_item += 1
    finally:
        for pid, (tw, rr) in workers.items():
            if tw < 0:
                continue
            for fd in (tw, rr):
                os.close(fd)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
    return results  # type: ignore[return-value]  # every slot was filled


__all__ = ["default_jobs", "check_jobs", "fork_map", "die_with_parent", "MAX_JOBS"]
