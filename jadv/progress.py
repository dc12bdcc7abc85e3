"""One progress mechanism for long work: training runs, attacks over many batches, studies.

A :class:`Progress` counts units of work (train steps, attacked batches, study parts) and turns
them into progress lines with the rate and the remaining time::

    step 50/4212 epoch 0.19 loss 2.3012 acc 0.1094 | 3.1 steps/s | ETA 0:22:03

or, instead of printing, calls a function with a :class:`ProgressEvent` (for a logger, a
notebook widget, tqdm, a test). The training loop (:func:`jadv.train.train_and_evaluate`), the
studies' shared plumbing (:func:`jadv.studies.common.cached_part`) and the evaluations
(:func:`jadv.attacks.robust_accuracy`, :func:`jadv.attacks.autoattack`) report through it; long
library functions take a ``progress=`` argument and pass it through :func:`make_progress`::

    def long_work(..., progress=None):
        prog = make_progress(progress, total=n_batches, desc="autoattack", unit="batch")
        for i in range(n_batches):
            ...                                        # the jitted work of one unit
            prog.update(1, robust=f"{acc:.4f}")        # host values only: no device sync here
        prog.close()

``progress``: None/False (silent: nothing printed, nothing called), True (print lines, at most one
per ``min_interval_s`` seconds plus the last), a callable ``f(event)`` (called at the same
cadence, nothing printed) or a :class:`Progress` (used as is). Progress is host-side bookkeeping
only: it never touches device arrays, so it adds no synchronisation to jitted code (format the
numbers you pass after you have fetched them anyway).
"""
from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Callable, Mapping

__all__ = ["Progress", "ProgressEvent", "format_duration", "make_progress"]


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")


def format_duration(seconds: float) -> str:
    """Seconds -> ``H:MM:SS`` (negative -> 0:00:00; hours are not wrapped at 24)."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclasses.dataclass(frozen=True)
class ProgressEvent:
    """One progress report.

    Attributes:
      desc: what is counted (``"step"``, ``"autoattack"``, ``"[tradeoff] part"``).
      done: units done so far; total: units in all (None: unknown).
      unit: the unit's name (``"step"``, ``"batch"``, ``"part"``), made plural in lines.
      rate: units per second over the window since the previous report (0.0 before any time
        has passed); mean_rate: over the whole run of this Progress.
      eta_s: seconds left at ``rate`` (None when ``total`` is unknown or the rate is 0).
      elapsed_s: seconds since the Progress started.
      fields: the caller's extra values (shown as ``key value`` pairs, in order).
      final: True for the report of :meth:`Progress.close`.
    """

    desc: str
    done: int
    total: int | None
    unit: str
    rate: float
    mean_rate: float
    eta_s: float | None
    elapsed_s: float
    fields: Mapping[str, Any]
    final: bool = False

    def line(self) -> str:
        """The printed form, e.g. ``step 50/4212 loss 2.3012 | 3.1 steps/s | ETA 0:22:03``; with
        an unknown total ``[tradeoff/medium] part 3 name sweep_linf | elapsed 0:05:10``; the final
        one ``... | done in 0:22:10 (3.2 steps/s)``."""
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        parts = [f"{self.desc} {count}"]
        for key, value in self.fields.items():
            parts.append(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}")
        head = " ".join(parts)
        if self.final:
            return f"{head} | done in {format_duration(self.elapsed_s)} ({self.mean_rate:.1f} {_plural(self.unit)}/s)"
        if self.total is None:                 # no ETA without a total (and the rate of parts says little)
            return f"{head} | elapsed {format_duration(self.elapsed_s)}"
        tail = f"{self.rate:.1f} {_plural(self.unit)}/s"
        tail += f" | ETA {format_duration(self.eta_s)}" if self.eta_s is not None else " | ETA unknown"
        return f"{head} | {tail}"


class Progress:
    """Counts units of work and reports rate and ETA (see the module docstring).

    Args:
      total: units in all (None if unknown: reports show the count and the elapsed time).
      desc: the line's first word(s).
      unit: what one unit is (``"step"``, ``"batch"``, ``"part"``).
      start: units already done when counting starts (a resumed run).
      min_interval_s: :meth:`update` reports at most once per this many seconds (and always
        when ``done`` reaches ``total``); :meth:`set` and :meth:`emit` report when called.
      callback: called with each :class:`ProgressEvent` instead of printing.
      enabled: False makes every call a no-op (the non-primary processes of a multi-process run).
      stream: where lines are printed (default ``sys.stdout``, flushed per line).
      clock: seconds as a float (default ``time.monotonic``; tests pass a fake clock).
    """

    def __init__(self, total: int | None = None, *, desc: str = "progress", unit: str = "step", start: int = 0,
                 min_interval_s: float = 10.0, callback: Callable[[ProgressEvent], Any] | None = None,
                 enabled: bool = True, stream=None, clock: Callable[[], float] = time.monotonic):
        if total is not None and int(total) < 0:
            raise ValueError(f"total must be >= 0 or None, got {total}")
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s}")
        self.total = None if total is None else int(total)
        self.desc, self.unit = desc, unit
        self.min_interval_s = float(min_interval_s)
        self.callback, self.enabled, self.stream, self.clock = callback, enabled, stream, clock
        self.done = self._start = self._window_done = int(start)
        self._t0 = self._window_t = clock()
        self._last_report_t = None
        self._last: ProgressEvent | None = None

    # -- measuring --------------------------------------------------------------------------------
    def _measure(self, fields: Mapping[str, Any], final: bool = False) -> ProgressEvent:
        now = self.clock()
        window = now - self._window_t
        rate = (self.done - self._window_done) / window if window > 0 else 0.0
        elapsed = now - self._t0
        mean_rate = (self.done - self._start) / elapsed if elapsed > 0 else 0.0
        eta = None
        if self.total is not None and rate > 0:
            eta = max(self.total - self.done, 0) / rate
        self._window_t, self._window_done = now, self.done
        return ProgressEvent(self.desc, self.done, self.total, self.unit, rate, mean_rate, eta, elapsed,
                             dict(fields), final)

    def _report(self, event: ProgressEvent) -> ProgressEvent:
        self._last, self._last_report_t = event, self.clock()
        if not self.enabled:
            return event
        if self.callback is not None:
            self.callback(event)
        else:
            stream = self.stream if self.stream is not None else sys.stdout
            print(event.line(), file=stream, flush=True)
        return event

    # -- the caller's side --------------------------------------------------------------------------
    def update(self, n: int = 1, **fields) -> ProgressEvent | None:
        """``n`` more units done; report if ``min_interval_s`` has passed since the last report or
        the work is complete. Returns the event when one was reported, else None."""
        self.done += int(n)
        now = self.clock()
        complete = self.total is not None and self.done >= self.total
        since = now - (self._t0 if self._last_report_t is None else self._last_report_t)
        if not (since >= self.min_interval_s or complete):
            return None
        return self._report(self._measure(fields))

    def set(self, done: int, *, emit: bool = True, **fields) -> ProgressEvent:
        """``done`` units done in all; measure the rate since the previous measurement and report
        (unless ``emit=False``: then only measure, and :meth:`emit` reports later with the
        caller's fields, as the training loop does to put the rate into its metrics record)."""
        self.done = int(done)
        event = self._measure(fields)
        self._last = event
        return self._report(event) if emit else event

    def emit(self, **fields) -> ProgressEvent:
        """Report the latest measurement (of :meth:`set` / :meth:`update`) again, with these
        fields added (same key: replaced) and the elapsed time brought up to date."""
        event = self._last if self._last is not None else self._measure({})
        return self._report(dataclasses.replace(event, fields={**event.fields, **fields},
                                                elapsed_s=self.clock() - self._t0))

    def close(self, **fields) -> ProgressEvent:
        """The final report: units done, total time, mean rate."""
        return self._report(self._measure(fields, final=True))

    @property
    def last(self) -> ProgressEvent | None:
        """The latest measured event (None before the first)."""
        return self._last


def make_progress(progress, *, total: int | None, desc: str, unit: str = "step",
                  min_interval_s: float = 10.0, stream=None) -> Progress:
    """A :class:`Progress` from a library function's ``progress=`` argument.

    ``None``/``False``: silent (enabled=False); ``True``: prints lines (to ``stream``, default
    ``sys.stdout``); a callable: called with each :class:`ProgressEvent`; a :class:`Progress`:
    returned as is (its ``total`` is set from ``total`` if it had none). Anything else is a
    ``TypeError``.
    """
    if progress is None or progress is False:
        return Progress(total, desc=desc, unit=unit, min_interval_s=min_interval_s, enabled=False)
    if progress is True:
        return Progress(total, desc=desc, unit=unit, min_interval_s=min_interval_s, stream=stream)
    if isinstance(progress, Progress):
        if progress.total is None and total is not None:
            progress.total = int(total)
        return progress
    if callable(progress):
        return Progress(total, desc=desc, unit=unit, min_interval_s=min_interval_s, callback=progress)
    raise TypeError(f"progress must be None, a bool, a callable taking a ProgressEvent, or a jadv.progress.Progress; "
                    f"got {type(progress).__name__}")
