"""pyramid_zeostore.progress: the bar on a terminal, the lines in a pipe,
silence when quiet; a fake clock, streams in memory."""

from __future__ import annotations

import argparse
import io
import os
import threading

import pytest

from pyramid_zeostore import progress as mod
from pyramid_zeostore.commands import add_quiet
from pyramid_zeostore.commands import progress as command_progress
from pyramid_zeostore.progress import Progress, interval_from_environ


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(interval: float = 10.0, total=None, unit='records'):
    clock, stream = Clock(), io.StringIO()
    shown = Progress(
        'verify x', total, unit, stream=stream, interval=interval,
        clock=clock,
    )
    return shown, clock, stream


def test_a_pipe_gets_lines_and_short_work_none():
    shown, clock, stream = lines(total=1000)
    assert shown.mode == 'lines'
    clock.now += 5
    shown.update(100)
    assert stream.getvalue() == ''  # before the first interval
    shown.close()
    assert stream.getvalue() == ''  # short work: nothing at all


def test_lines_say_done_total_rate_and_eta():
    shown, clock, stream = lines(total=1000)
    clock.now += 10
    shown.update(250)
    clock.now += 5
    shown.update(250)  # within the interval: no line
    clock.now += 5
    shown.moveto(600)
    clock.now += 20
    shown.moveto(1000)
    shown.close()
    shown.close()  # twice: once
    shown.update(5)  # after the end: ignored
    assert stream.getvalue().splitlines() == [
        'verify x: 250/1,000 records (25%), 25 records/s, ETA 30s',
        'verify x: 600/1,000 records (60%), 30 records/s, ETA 13s',
        'verify x: 1,000/1,000 records (100%), 25 records/s, 40s so far',
        'verify x: 1,000/1,000 records (100%), 25 records/s, done in 40s',
    ]


def test_lines_without_a_total_and_long_durations():
    shown, clock, stream = lines(interval=60)
    clock.now += 3 * 3600 + 125
    shown.update(7)
    shown.set_total(70)
    clock.now += 61
    shown.update(7)
    shown.close()
    assert stream.getvalue().splitlines() == [
        'verify x: 7 records, 0 records/s, 3h02m so far',
        'verify x: 14/70 records (20%), 0 records/s, ETA 12h12m',
        'verify x: 14/70 records (20%), 0 records/s, done in 3h03m',
    ]


def test_minutes_in_the_eta():
    shown, clock, stream = lines(interval=1, total=100)
    clock.now += 60
    shown.update(25)
    assert stream.getvalue().endswith(', ETA 3m00s\n')


def test_interval_zero_writes_a_line_at_every_step():
    shown, clock, stream = lines(interval=0, total=3)
    for _ in range(3):
        clock.now += 1
        shown.update()
    shown.close()
    assert len(stream.getvalue().splitlines()) == 4


def test_off_writes_nothing():
    stream = Terminal()
    with Progress('x', 10, mode='off', stream=stream) as shown:
        shown.update(10)
    assert stream.getvalue() == '' and shown.done == 10


def test_null_is_off():
    assert mod.null().mode == 'off'


def test_a_terminal_gets_tqdms_bar():
    stream = Terminal()
    with Progress('copy', None, 'transactions', stream=stream) as shown:
        assert shown.mode == 'bar'
        assert stream.getvalue() == ''  # made on first use
        shown.set_total(4)
        shown.update(2)
        shown.moveto(4)
        before = stream.getvalue().count('\r')
        shown.moveto(4)  # nothing new: redrawn (its clock moves)
        assert stream.getvalue().count('\r') == before + 1
    text = stream.getvalue()
    assert text.startswith('\r') and text.endswith('\n')
    last = text.rstrip('\n').rsplit('\r', 1)[-1]
    assert last.startswith('copy: 100%|') and '| 4/4 [' in last
    assert ' transactions/s]' in last


def test_a_bar_is_shown_for_work_ended_before_any_step():
    stream = Terminal()
    Progress('pack', 10, stream=stream).close()
    assert stream.getvalue().rstrip('\n').endswith(
        ' 0/10 [00:00<?, ? records/s]'
    )


def test_bytes_are_scaled_on_a_terminal():
    stream = Terminal()
    with Progress('backup', 3 * 1024 ** 2, 'bytes', stream=stream) as shown:
        shown.moveto(3 * 1024 ** 2)
    last = stream.getvalue().rstrip('\n').rsplit('\r', 1)[-1]
    assert '3.00M/3.00M [' in last and 'B/s]' in last


def test_the_bar_takes_a_sized_terminals_width(monkeypatch):
    monkeypatch.setattr(
        os, 'get_terminal_size', lambda fd: os.terminal_size((100, 30))
    )

    class Sized(Terminal):
        def fileno(self) -> int:
            return 2

    assert mod._width(Sized()) == {'dynamic_ncols': True}
    assert mod._width(Terminal()) == {'ncols': 80, 'nrows': 24}


def test_a_stream_without_isatty_gets_lines():
    class Bare:
        def write(self, text):
            pass

    assert Progress('x', stream=Bare()).mode == 'lines'


def test_a_bad_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of"):
        Progress('x', mode='loud')


@pytest.mark.parametrize(
    'value, expected',
    [('', 10.0), ('2.5', 2.5), ('0', 0.0), ('-1', 10.0), ('inf', 10.0),
     ('soon', 10.0)],
)
def test_the_interval_from_the_environment(value, expected):
    assert interval_from_environ({'PZEO_PROGRESS_INTERVAL': value}) == (
        expected
    )


def test_poll_measures_from_outside_until_stopped():
    shown, clock, stream = lines(interval=0, total=30)
    values = iter([None, 10, OSError('gone'), 20])
    measured = threading.Event()

    def measure():
        value = next(values, 30)
        if value == 30:
            measured.set()
        if isinstance(value, Exception):
            raise value
        return value

    with shown, shown.poll(measure, every=0.001):
        assert measured.wait(10)
    assert shown.done == 30
    written = stream.getvalue().splitlines()
    # Nothing to measure yet, or a file gone: the clock still runs.
    assert written[0].startswith('verify x: 0/30 records (0%)')
    assert written[1].startswith('verify x: 10/30 records (33%)')
    assert written[2].startswith('verify x: 10/30 records (33%)')
    assert written[-1].startswith('verify x: 30/30 records (100%)')


def test_commands_progress_is_off_when_quiet():
    parser = argparse.ArgumentParser()
    add_quiet(parser)
    assert command_progress(parser.parse_args(['-q']), 'x').mode == 'off'
    assert command_progress(
        parser.parse_args([]), 'x'
    ).mode in ('bar', 'lines')
    # A command without the option: progress as usual.
    assert command_progress(argparse.Namespace(), 'x').mode != 'off'
