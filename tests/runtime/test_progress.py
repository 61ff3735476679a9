"""Progress lines: rows/s and ETA count rows done since the start, not resumed ones; shared formats."""

from __future__ import annotations

import io

import pytest

from runtime.progress import Progress, format_gib, format_seconds

pytestmark = pytest.mark.timeout(30)


class Tick:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_resumed_rows_do_not_count_towards_the_rate_or_the_eta():
    clock, stream = Tick(), io.StringIO()
    p = Progress("cnn", 1000, stream=stream, every_s=0.0, done=900, clock=clock)
    clock.t += 10.0
    p.update(950)  # 50 rows in 10 s
    assert stream.getvalue().splitlines()[-1] == "[cnn] 950/1000 rows ( 95.0%) 5 rows/s ETA 10.0s"
    clock.t += 10.0
    p.update(1000)
    p.close()
    assert stream.getvalue().splitlines()[-1] == "[cnn] 1000/1000 rows (100.0%) done in 20.0s"


def test_a_fresh_progress_counts_from_zero():
    clock, stream = Tick(), io.StringIO()
    p = Progress("mlp", 100, stream=stream, every_s=0.0, clock=clock)
    clock.t += 2.0
    p.update(40)
    assert stream.getvalue().splitlines()[-1] == "[mlp] 40/100 rows ( 40.0%) 20 rows/s ETA 3.0s"


@pytest.mark.parametrize(("seconds", "text"), [
    (-1.0, "0.0s"), (0.0, "0.0s"), (0.04, "40ms"), (0.0012, "1.2ms"), (0.3, "0.30s"), (0.25, "0.25s"),
    (12.34, "12.3s"), (245.0, "4m05s"), (3723.9, "1h02m03s"),
    (float("nan"), "-"), (float("inf"), "-"),
])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(("n", "text"), [(None, "-"), (0, "0.00 GiB"), (3 * 2**29, "1.50 GiB"), (1.5e10, "13.97 GiB")])
def test_format_gib(n, text):
    assert format_gib(n) == text
