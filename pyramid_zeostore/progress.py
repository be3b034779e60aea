"""Progress of long work (``pzeo verify``, ``copy``, ``backup``, ``pack``,
``evolve``): a bar on a terminal, a plain line now and then in a pipe.

On a terminal, a tqdm bar on standard error: done/total, rate, ETA. In a
pipe or a CI log, nothing for work shorter than the interval, then one
line per interval and one at the end, so a log shows that work goes on
without a bar's carriage returns. ``quiet`` says nothing at all. The
command's own report stays on standard output, untouched either way.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, TextIO

from tqdm import tqdm

#: Seconds between two lines in a pipe (``PZEO_PROGRESS_INTERVAL``).
INTERVAL = 10.0
MODES = ('auto', 'bar', 'lines', 'off')


def interval_from_environ(environ: Any = os.environ) -> float:
    """The pipe's interval: ``PZEO_PROGRESS_INTERVAL`` seconds if it is a
    number >= 0 (0: a line at every step), else :data:`INTERVAL`."""
    try:
        value = float(environ.get('PZEO_PROGRESS_INTERVAL', ''))
    except ValueError:
        return INTERVAL
    return value if 0 <= value < float('inf') else INTERVAL


def _width(stream: Any) -> dict[str, Any]:
    """tqdm's size: the terminal's as it changes, or 80 x 24 if the
    terminal says it has none (a pseudo-terminal nobody sized, where tqdm
    would hide the bar as below the screen's last line)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        size = os.terminal_size((0, 0))
    if size.columns > 0 and size.lines > 0:
        return {'dynamic_ncols': True}
    return {'ncols': 80, 'nrows': 24}


def _count(n: float) -> str:
    return f'{n:,.0f}'


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f'{seconds}s'
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f'{minutes}m{seconds:02d}s'
    hours, minutes = divmod(minutes, 60)
    return f'{hours}h{minutes:02d}m'


class Progress:
    """How far a piece of work is: ``update(n)`` as it goes, ``close()``
    (or leave the ``with`` block) when it ends.

    ``mode`` is ``'bar'`` (tqdm), ``'lines'``, ``'off'``, or ``'auto'``:
    a bar if ``stream`` is a terminal, lines otherwise. ``total`` may be
    unknown (None) or given later with :meth:`set_total`.
    """

    def __init__(
        self,
        desc: str,
        total: int | None = None,
        unit: str = 'records',
        *,
        mode: str = 'auto',
        stream: TextIO | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, not {mode!r}')
        self.stream = stream if stream is not None else sys.stderr
        if mode == 'auto':
            isatty = getattr(self.stream, 'isatty', None)
            mode = 'bar' if isatty is not None and isatty() else 'lines'
        self.mode = mode
        self.desc = desc
        self.total = total
        self.unit = unit
        self.done = 0
        self.interval = (
            interval if interval is not None else interval_from_environ()
        )
        self.clock = clock
        self.started = self.last = clock()
        self.lines = 0  # lines written in 'lines' mode
        self.closed = False
        self.lock = threading.Lock()
        self.bar: Any = None  # made on first use: the caller may print
        # a line of its own between making this and starting the work

    def _bar(self) -> Any:
        if self.bar is None:
            scale = (
                {'unit': 'B', 'unit_scale': True, 'unit_divisor': 1024}
                if self.unit == 'bytes' else {'unit': f' {self.unit}'}
            )
            self.bar = tqdm(
                total=self.total, initial=self.done, desc=self.desc,
                file=self.stream, mininterval=0.2, leave=True,
                **_width(self.stream), **scale,
            )
        return self.bar

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_total(self, total: int | None) -> None:
        """The amount of work, once it is known."""
        with self.lock:
            self.total = total
            if self.bar is not None:
                self.bar.total = total
                self.bar.refresh()

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.moveto(self.done + n)

    def moveto(self, done: int) -> None:
        """``done`` units done in all (for work measured from outside,
        such as the size of a file being written)."""
        with self.lock:
            if self.closed:
                return
            step = done - self.done
            if self.mode == 'bar':
                bar = self._bar()
                if step:
                    bar.update(step)
                else:  # nothing done since: the elapsed time moves
                    bar.refresh()
            self.done = done
            if self.mode == 'lines':
                now = self.clock()
                if now - self.last >= self.interval:
                    self.last = now
                    self._line(now)

    def _line(self, now: float, end: str = '') -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        text = f'{self.desc}: {_count(self.done)}'
        if self.total:
            percent = 100.0 * self.done / self.total
            text += f'/{_count(self.total)} {self.unit} ({percent:.0f}%)'
        else:
            text += f' {self.unit}'
        text += f', {_count(rate)} {self.unit}/s'
        if end:
            text += f', {end} in {_duration(elapsed)}'
        elif self.total and rate > 0 and self.done < self.total:
            text += f', ETA {_duration((self.total - self.done) / rate)}'
        else:
            text += f', {_duration(elapsed)} so far'
        self.stream.write(text + '\n')
        self.stream.flush()
        self.lines += 1

    def close(self) -> None:
        """The work ended: the bar's last state, or in a pipe a last line
        (only if the work wrote a line before: short work stays quiet)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.mode == 'bar':
                self._bar().close()
            elif self.mode == 'lines' and self.lines:
                self._line(self.clock(), end='done')

    def poll(
        self, measure: Callable[[], int | None], every: float = 0.2
    ) -> Poller:
        """Measure the work from outside (``measure() -> done``, None
        for not yet) every ``every`` seconds in a thread, until the
        returned poller is stopped; for work done elsewhere, such as
        a subprocess writing a file or a server packing."""
        return Poller(self, measure, every)


class Poller:
    """A thread that moves a :class:`Progress` by ``measure()``; stop it
    with :meth:`stop` or a ``with`` block."""

    def __init__(
        self, progress: Progress, measure: Callable[[], int | None],
        every: float,
    ) -> None:
        self.progress = progress
        self.measure = measure
        self.every = every
        self.stopped = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name='pzeo-progress', daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            self._measure()

    def _measure(self) -> None:
        try:
            done = self.measure()
        except OSError:  # a file not there yet, or gone already
            done = None
        # Not measurable yet: the same amount, so that the bar shows and
        # its clock runs (a pack's first phase writes nothing).
        self.progress.moveto(self.progress.done if done is None else done)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self._measure()

    def __enter__(self) -> Poller:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def null() -> Progress:
    """A progress that says nothing (library callers, tests)."""
    return Progress('', mode='off')
