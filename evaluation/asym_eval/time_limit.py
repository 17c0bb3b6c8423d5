"""The grader's hard time limit inside one process: a SIGALRM timer in the main thread, a watchdog elsewhere.

math-verify's own timeouts use SIGALRM, which only works in a process's main thread. In the main thread we arm
one timer of our own around the whole math-verify step (float seconds, one bound for parse + verify together).
Where the pool cannot start a child process, a calling thread grades itself under the watchdog, which cannot
interrupt one long C call (``pool.py`` says when that happens)."""

from __future__ import annotations

import ctypes
import signal
import threading


class GradingTimeout(BaseException):
    """Raised by our SIGALRM timer. A BaseException, like math-verify's, so ``except Exception`` inside
    sympy or math-verify cannot swallow it."""


class AlarmTimer:
    """SIGALRM after ``seconds`` (main thread only); restores whatever timer and handler were there.

    The alarm repeats every ``REFIRE_S`` until the block ends: an exception raised by a signal handler is lost
    where Python cannot propagate it (in a ``__del__``, a weakref or GC callback: "Exception ignored in ..."),
    and a one-shot alarm lost that way left a hostile response unbounded (26-42 s instead of 1 s, seen under
    load). A later alarm raises again.
    """

    REFIRE_S = 0.05

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.active = False

    def __enter__(self):
        def on_alarm(signum, frame):
            if self.active:  # not once the block is leaving: the last alarm may land in __exit__
                raise GradingTimeout(f"grading took over {self.seconds:g}s")

        self.previous_handler = signal.signal(signal.SIGALRM, on_alarm)
        self.active = True
        self.previous_timer = signal.setitimer(signal.ITIMER_REAL, self.seconds, self.REFIRE_S)
        return self

    def __exit__(self, *exc):
        self.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous_handler)
        if self.previous_timer[0] > 0:  # someone else's timer was running: put it back
            signal.setitimer(signal.ITIMER_REAL, *self.previous_timer)
        return False


class WatchdogTimer:
    """``AlarmTimer`` for any thread: a watchdog thread raises ``GradingTimeout`` in the timed thread after
    ``seconds`` (``PyThreadState_SetAsyncExc``), again every ``REFIRE_S`` until the block ends.

    An asynchronous exception is raised between two bytecodes, so one long call into C (a regex on degenerate
    text, a big-integer power) runs to its end first: the bound is looser than a killed process's, which is why
    this is only the fallback where no grading process can be started. The exception is never raised after the
    block: leaving it clears a pending one under the lock the watchdog raises it under.
    """

    REFIRE_S = 0.05
    _set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    _set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.active = False

    def __enter__(self):
        self.thread_id = threading.get_ident()
        self.active = True
        threading.Thread(target=self._watch, daemon=True, name="grading-watchdog").start()
        return self

    def _watch(self) -> None:
        wait_s = self.seconds
        while not self.done.wait(wait_s):
            with self.lock:
                if not self.active:
                    return
                self._set_async_exc(self.thread_id, GradingTimeout)  # the class: CPython instantiates it
            wait_s = self.REFIRE_S

    def __exit__(self, *exc):
        with self.lock:
            self.active = False
            self._set_async_exc(self.thread_id, ctypes.py_object())  # NULL: drop one not raised yet
        self.done.set()
        return False
