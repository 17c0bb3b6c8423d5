"""Grade many pairs in parallel processes, each pair under a hard time limit.

Why a pool of our own and not ``multiprocessing.Pool``: a standard pool cannot kill the one worker that is
stuck in C code (a sympy power tower) and keep the rest of the run; here a worker that overruns or crashes is
killed and replaced, and only the pair it held is scored wrong, with the reason recorded.

Why affinity: each distinct reference answer is given to one worker, so it is parsed once in the whole run
(each worker keeps ``parse_reference`` in an ``lru_cache``). Idle workers steal whole answer groups.

Why the parent works while the workers start: most pairs are settled by the cheap steps (no sympy), which the
parent runs while the fork server is still importing and warming math-verify (over a second); a pair they leave
undecided is sent to a worker as soon as it is found, and a ready worker with nothing to parse shares the cheap
pass, so neither side waits for the other.
"""

from __future__ import annotations

import atexit
import collections
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from multiprocessing.connection import wait

from asym_eval.verdicts import (
    DEFAULT_TIMEOUT_S,
    GradeRequest,
    GradeResult,
    grade_in_this_process,
    grade_without_parser,
)

# A worker also arms its own SIGALRM at timeout_s; the parent kills it only if that did not work (C code).
KILL_GRACE_S = 1.0
# Pairs sent ahead to a worker, so it never waits on the parent between two quick pairs.
PIPELINE_DEPTH = 2
# Not-yet-checked pairs a worker may hold (see ``GradingPool.grade``), and pairs the parent checks between two
# looks at its workers.
UNCHECKED_DEPTH = 16
CHEAP_CHUNK = 32
WORKER_MEMORY_LIMIT_BYTES = 6 * 1024**3
MAX_FAILED_STARTS = 5


def _worker_loop(conn, timeout_s: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:  # a runaway big-integer computation should fail with MemoryError, not swap the machine
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_LIMIT_BYTES, WORKER_MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    # Warm the parser up before saying ready, so that does not eat into a pair's time limit (a no-op cost in
    # a worker forked from the warm fork server).
    import asym_eval._warm_grader  # noqa: F401

    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, request = message
        result = grade_without_parser(
            request.response, request.answer, request.tolerance, request.boxed_only
        ) or grade_in_this_process(
            request.response,
            request.answer,
            timeout_s=timeout_s,
            multiple_answers=request.multiple_answers,
            tolerance=request.tolerance,
            boxed_only=request.boxed_only,
        )
        conn.send((index, result))


class _Worker:
    def __init__(self, context, timeout_s: float):
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_worker_loop, args=(child_conn, timeout_s), daemon=True)
        # Started from a thread: with a fork server, ``start`` blocks until the server has imported and warmed
        # math-verify (over a second), which the caller spends on its own work instead (the cheap pass). The
        # worker says "ready" on ``conn`` once it runs; nothing else touches ``process`` before ``kill``.
        self.starter = threading.Thread(target=self._start, args=(child_conn,), daemon=True)
        self.starter.start()
        self.ready = False
        self.in_flight: collections.deque[int] = collections.deque()  # sent, oldest first
        self.head_started = 0.0  # when the oldest in-flight pair began on the worker

    def _start(self, child_conn) -> None:
        try:
            self.process.start()
        finally:
            child_conn.close()  # the parent's copy: the worker's death is then an EOF on ``conn``

    def kill(self, grace_s: float = 0.0) -> None:
        """Ends the worker, after ``grace_s`` to exit on its own."""
        self.starter.join()
        if self.process.pid is not None:  # None: the start itself failed
            self.process.join(grace_s)
            if self.process.is_alive():
                self.process.kill()
            self.process.join(5)
        self.conn.close()


def _context():
    """forkserver where there is one: safe from a threaded caller (a vLLM engine actor, tqdm's monitor
    thread), unlike fork, and sympy/math-verify are imported once in the server, not once per worker as
    with spawn (about 0.9 s of CPU each)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["asym_eval._warm_grader"])
        return context
    return multiprocessing.get_context("spawn")


class GradingPool:
    """``with GradingPool(2) as pool: results = pool.grade(requests)`` (results in request order)."""

    def __init__(self, num_workers: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.num_workers = max(1, num_workers or os.cpu_count() or 1)
        self.timeout_s = timeout_s
        self.context = _context()
        self.failed_starts = 0
        self.workers = [_Worker(self.context, timeout_s) for _ in range(self.num_workers)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.conn.send(None)
            except (OSError, ValueError):
                pass
        for worker in self.workers:  # they hold no state worth a slow interpreter shutdown
            worker.kill(grace_s=0.1)
        self.workers = []

    def _replace(self, slot: int) -> None:
        self.workers[slot].kill()
        self.workers[slot] = _Worker(self.context, self.timeout_s)

    def grade(
        self, requests: list[GradeRequest], progress: bool = True, desc: str = "grading"
    ) -> list[GradeResult]:
        results: list[GradeResult | None] = [None] * len(requests)
        # The cheap steps run here, a chunk at a time, on the core the starting workers leave free (their fork
        # server imports and warms math-verify meanwhile). A pair they leave undecided goes to a worker at
        # once; a ready worker with nothing to parse takes not-yet-checked pairs from the other end, so on a
        # busy machine the workers share the cheap pass instead of waiting for it. Either way a pair's result
        # is the same (a worker runs the same cheap steps first).
        unchecked = collections.deque(range(len(requests)))
        queues: list[collections.deque] = [collections.deque() for _ in self.workers]
        groups: dict[str, collections.deque] = {}  # answer -> its group of parser-bound pairs, while queued
        loads = [0] * len(self.workers)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(requests), desc=desc, unit="pair", dynamic_ncols=True)
        remaining = len(requests)
        while remaining:
            done = 0
            for _ in range(min(CHEAP_CHUNK, len(unchecked))):
                index = unchecked.popleft()
                request = requests[index]
                result = grade_without_parser(
                    request.response, request.answer, request.tolerance, request.boxed_only
                )
                if result is None:
                    self._enqueue(index, requests, queues, groups, loads)
                else:
                    results[index] = result
                    done += 1
            now = time.monotonic()
            for slot, worker in enumerate(self.workers):
                self._top_up(slot, worker, queues, unchecked, requests, now)
            waiting = {worker.conn: slot for slot, worker in enumerate(self.workers)}
            deadlines = [
                w.head_started + self.timeout_s + KILL_GRACE_S
                for w in self.workers
                if w.ready and w.in_flight
            ]
            wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 1.0
            for conn in wait(list(waiting), timeout=0 if unchecked else wait_s):
                slot = waiting[conn]
                worker = self.workers[slot]
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    done += self._fail_head(slot, queues, results, "worker_crashed")
                    continue
                if message == "ready":
                    self.failed_starts = 0
                    worker.ready = True
                    worker.head_started = time.monotonic()
                    continue
                index, result = message
                worker.in_flight.popleft()
                worker.head_started = time.monotonic()
                results[index] = result
                done += 1
            now = time.monotonic()
            for slot, worker in enumerate(self.workers):
                if (
                    worker.ready
                    and worker.in_flight
                    and now > worker.head_started + self.timeout_s + KILL_GRACE_S
                ):
                    done += self._fail_head(slot, queues, results, "timeout_killed")
            remaining -= done
            if bar is not None and done:
                bar.update(done)
        if bar is not None:
            bar.close()
        return results  # type: ignore[return-value]

    def _enqueue(self, index, requests, queues, groups, loads) -> None:
        """A parser-bound pair joins its answer's group (each reference is parsed by one worker), or starts a
        group on the least loaded worker."""
        answer = requests[index].answer
        group = groups.get(answer)
        if group:  # a non-empty group is still in some worker's queue (stolen or not)
            group.append(index)
            return
        slot = loads.index(min(loads))
        groups[answer] = collections.deque([index])
        queues[slot].append(groups[answer])
        loads[slot] += 1

    def _fail_head(self, slot, queues, results, reason: str) -> int:
        """The worker in ``slot`` died or overran: its oldest pair is scored wrong, the rest go back."""
        worker = self.workers[slot]
        if not worker.in_flight:  # died while starting: nothing was lost, but do not retry for ever
            self.failed_starts += 1
            if self.failed_starts > MAX_FAILED_STARTS:
                raise RuntimeError(
                    f"grading workers die while starting (exit code {worker.process.exitcode})"
                )
            self._replace(slot)
            return 0
        index = worker.in_flight.popleft()
        if reason == "worker_crashed":
            worker.process.join(1)
            reason = f"worker_crashed (exit code {worker.process.exitcode})"
        results[index] = GradeResult(False, None, reason)
        if worker.in_flight:
            queues[slot].appendleft(collections.deque(worker.in_flight))
        self._replace(slot)
        return 1

    def _top_up(self, slot, worker, queues, unchecked, requests, now) -> None:
        """Parser-bound pairs first, ``PIPELINE_DEPTH`` ahead; with none to take (own or stolen), not-yet-checked
        ones, deeper: they take a fraction of a millisecond each, and the parent looks in only between chunks."""
        if not worker.ready:
            return
        while len(worker.in_flight) < UNCHECKED_DEPTH:
            index = self._next_index(slot, queues) if len(worker.in_flight) < PIPELINE_DEPTH else None
            if index is None:
                if not unchecked or any(queues[slot]):
                    return
                index = unchecked.pop()
            if not worker.in_flight:
                worker.head_started = now
            worker.in_flight.append(index)
            worker.conn.send((index, requests[index]))

    def _next_index(self, slot, queues) -> int | None:
        own = queues[slot]
        while own and not own[0]:
            own.popleft()
        if not own:
            self._steal(slot, queues)
        return own[0].popleft() if own else None

    @staticmethod
    def _steal(slot, queues) -> None:
        """An idle worker takes the busiest worker's last answer group, or half of its only group (the
        reference is then parsed twice, which is cheaper than leaving a core idle at the end)."""
        for worker_queue in queues:
            while worker_queue and not worker_queue[-1]:
                worker_queue.pop()
        donor = max(range(len(queues)), key=lambda s: sum(len(group) for group in queues[s]))
        if donor == slot or not queues[donor]:
            return
        if len(queues[donor]) >= 2:
            queues[slot].append(queues[donor].pop())
            return
        group = queues[donor][0]
        if len(group) >= 2:
            queues[slot].append(collections.deque(group.pop() for _ in range(len(group) // 2)))


# Worker processes of a ThreadGradingService: $ASYM_GRADING_WORKERS, else min(4, CPU count).
WORKERS_ENV = "ASYM_GRADING_WORKERS"
DEFAULT_MAX_WORKERS = 4
# A worker that has not said "ready" this long after its start is taken as failed.
START_TIMEOUT_S = 60.0
# Failed starts in a row after which a service stops starting workers and grades in the calling threads.
MAX_SERVICE_FAILED_STARTS = 2
logger = logging.getLogger(__name__)


def default_num_workers() -> int:
    """``$ASYM_GRADING_WORKERS``, else min(4, CPU count); read when a service is built."""
    value = os.environ.get(WORKERS_ENV)
    if value is None:
        return max(1, min(DEFAULT_MAX_WORKERS, os.cpu_count() or 1))
    if not value.strip().isdigit() or int(value) < 1:
        raise ValueError(f"${WORKERS_ENV}: must be a whole number >= 1, got {value!r}")
    return int(value)


class ThreadGradingService:
    """Grades one pair at a time for each of many threads, on ``num_workers`` worker processes.

    Built for the training reward: upstream calls it from one thread per sample (``asyncio.to_thread``), and a
    step's long, degenerate responses each need the parser under a hard limit. A calling thread takes an idle
    worker from a queue (waiting while all are busy), sends its pair and waits up to the limit. A worker that
    overruns or dies is killed and replaced, and only its own pair scores wrong; a worker is started in the
    background, so a caller never waits on more than one start. Where workers cannot start (after
    ``MAX_SERVICE_FAILED_STARTS`` failures in a row: a script that starts grading without an
    ``if __name__ == "__main__":`` guard makes every worker re-import it and die) the service stops starting
    them, says so once, and each pair is graded in its calling thread under a watchdog instead.
    """

    def __init__(self, num_workers: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.num_workers = num_workers or default_num_workers()
        self.timeout_s = timeout_s
        self.context = _context()
        self.idle: queue.Queue[_Worker] = queue.Queue()
        self.lock = threading.Lock()
        self.failed_starts = 0
        self.workers_usable = True
        self.in_use: set[_Worker] = set()  # workers holding a pair now
        self.max_busy = 0  # the most pairs on workers at once (for tests and benchmarks)
        for _ in range(self.num_workers):
            self.idle.put(_Worker(self.context, timeout_s))

    def grade(self, request: GradeRequest) -> GradeResult:
        worker = None
        while self.workers_usable and worker is None:
            try:
                worker = self.idle.get(timeout=0.5)  # a worker given up meanwhile lets the wait end
            except queue.Empty:
                continue
        if worker is None:
            return self._grade_here(request)
        if not worker.ready and not self._wait_ready(worker):
            return self._grade_here(request)
        with self.lock:
            self.in_use.add(worker)
            self.max_busy = max(self.max_busy, len(self.in_use))
        try:
            result, replacement = self._grade_on(worker, request)
        finally:
            with self.lock:
                self.in_use.discard(worker)
        self.idle.put(replacement)
        return result

    def _grade_here(self, request: GradeRequest) -> GradeResult:
        return grade_without_parser(
            request.response, request.answer, request.tolerance, request.boxed_only
        ) or grade_in_this_process(
            request.response,
            request.answer,
            timeout_s=self.timeout_s,
            multiple_answers=request.multiple_answers,
            tolerance=request.tolerance,
            boxed_only=request.boxed_only,
        )

    def _wait_ready(self, worker: _Worker) -> bool:
        """Wait for the worker's "ready"; on a failed start, start another in its place (or give up on workers)
        and say False."""
        message = None
        try:
            if worker.conn.poll(START_TIMEOUT_S):
                message = worker.conn.recv()
        except (EOFError, OSError):
            pass
        if message == "ready":
            worker.ready = True
            with self.lock:
                self.failed_starts = 0
            return True
        worker.kill()
        with self.lock:
            self.failed_starts += 1
            give_up = self.failed_starts >= MAX_SERVICE_FAILED_STARTS
            if give_up and self.workers_usable:
                self.workers_usable = False
                logger.warning(
                    "asym_eval: grading workers die while starting (exit code %s; a script that grades must "
                    'start under `if __name__ == "__main__":`); grading in the calling threads from now on, '
                    "under a watchdog",
                    worker.process.exitcode,
                )
        if not give_up:
            self.idle.put(_Worker(self.context, self.timeout_s))
        return False

    def _grade_on(self, worker: _Worker, request: GradeRequest) -> tuple[GradeResult, _Worker]:
        """The pair's result and the worker to put back: the same one, or a fresh one in place of one that
        overran the limit or died."""
        try:
            worker.conn.send((0, request))
            if worker.conn.poll(self.timeout_s + KILL_GRACE_S):
                return worker.conn.recv()[1], worker
            reason = "timeout_killed"
        except (EOFError, OSError):
            worker.process.join(1)
            reason = f"worker_crashed (exit code {worker.process.exitcode})"
        worker.kill()
        return GradeResult(False, None, reason), _Worker(self.context, self.timeout_s)

    def close(self) -> None:
        self.workers_usable = False
        while True:
            try:
                worker = self.idle.get_nowait()
            except queue.Empty:
                return
            try:
                worker.conn.send(None)
            except (OSError, ValueError):
                pass
            worker.kill(grace_s=0.1)


_services: dict[float, ThreadGradingService] = {}
_services_lock = threading.Lock()


def thread_grading_service(timeout_s: float) -> ThreadGradingService:
    """The process's service for this time limit (a worker arms its limit when it starts), built on first use."""
    with _services_lock:
        service = _services.get(timeout_s)
        if service is None:
            service = _services[timeout_s] = ThreadGradingService(timeout_s=timeout_s)
        return service


@atexit.register
def _close_services() -> None:
    for service in _services.values():
        service.close()
