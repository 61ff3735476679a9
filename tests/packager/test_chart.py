"""``ninefit estimate --chart``: the drawn timeline is the estimate's, lanes run side by side, and nothing
is drawn outside the axes or over another label (at 2 s, 2 min and 9 h limits, on 1, 2 and 4 lanes)."""

from __future__ import annotations

import itertools

import pytest

from packager.estimate.chart import AFTER, BEFORE, draw_chart, timeline
from packager.estimate.estimator import BudgetEstimate, EstimateOptions, estimate_bundle
from packager.estimate.price.items import Item
from packager.estimate.price.roofline import Estimate
from runtime.settings import parse_duration

pytest.importorskip("matplotlib")
LIMITS = ("2s", "2m", "9h")
ROWS = 594_000


def _est(seconds: float, band: tuple[float, float] = (0.9, 1.1)) -> Estimate:
    return Estimate(seconds, seconds * band[0], seconds * band[1], "high", "t4x2", "fp32", "host", 1.0)


def synthetic(lanes: int, limit_s: float) -> BudgetEstimate:
    """Five members from 1 s to 50 min of inference (a long name, a tiny one): many steps per lane."""
    items = [Item("python", _est(0.02), "measured"), Item("imports", _est(0.4), "measured"),
             Item("startup", _est(2.0, (0.5, 3.0)), "measured"), Item("read", _est(30.0), "measured"),
             Item("writing", _est(3.0), "measured"), Item("exit", _est(0.1), "measured")]
    for name, seconds in (("effnet_b3_long_name", 3000), ("tiny", 1), ("resnet50", 500), ("vit", 1200), ("x", 40)):
        items += [Item("load", _est(5.0), "measured", name), Item("inference", _est(seconds), "measured", name),
                  Item("ensembling", _est(seconds * 0.02), "measured", name)]
    return BudgetEstimate("synthetic", "t4x2", "NVIDIA T4 x2", ROWS, limit_s, min(0.25 + 0.01 * limit_s, limit_s / 4),
                          tuple(items), lanes=lanes, chunk_rows=tuple((n, 1000) for n in ("effnet_b3_long_name", "tiny",
                                                                                          "resnet50", "vit", "x")))


@pytest.fixture(scope="module", params=[(lanes, limit) for lanes in (1, 2) for limit in LIMITS],
                ids=lambda p: f"{p[0]}lane-{p[1]}")
def digits_estimate(request, digits_bundle) -> BudgetEstimate:
    lanes, limit = request.param
    return estimate_bundle(digits_bundle, EstimateOptions(target="local", rows=ROWS, time_limit_s=parse_duration(limit),
                                                          lanes=lanes))


def check_timeline(est: BudgetEstimate) -> None:
    bars = timeline(est)
    stages = [b for b in bars if not b.member and b.row != "total"]
    for a, b in zip(stages, stages[1:]):  # one after another, from 0
        assert b.start == pytest.approx(a.end, abs=1e-9), (a, b)
    assert stages[0].start == 0.0
    # The drawn timeline ends at the estimate's total: on several lanes the members count their span, not their sum.
    assert stages[-1].end == pytest.approx(est.expected_s, rel=1e-9)
    assert bars[-1].row == "total" and bars[-1].seconds == pytest.approx(est.expected_s)
    order = [b.row for b in stages]
    assert [r for r in order if r in BEFORE] == [s for s in BEFORE if s in order]
    assert [r for r in order if r in AFTER] == [s for s in AFTER if s in order]
    work = sum(i.estimate.seconds for i in est.items if i.member)
    if est.lanes > 1:
        (members,) = [b for b in stages if b.row.startswith("members")]
        assert members.seconds == pytest.approx(est.members_span())
        assert not {"load", "inference", "ensembling"} & set(order)  # the lanes' stages are not added up
        steps = [b for b in bars if b.member]
        assert {b.row for b in steps} <= {f"lane {k}" for k in range(est.lanes)}
        for b in steps:
            assert members.start - 1e-9 <= b.start and b.end <= members.end + 1e-9, b
        for _lane, group in itertools.groupby(sorted(steps, key=lambda b: (b.row, b.start)), key=lambda b: b.row):
            group = list(group)
            for a, b in zip(group, group[1:]):
                assert b.start >= a.end - 1e-9  # one step at a time on a lane
        if est.members_span() < work * 0.99:
            assert sum(b.seconds for b in stages) < sum(i.estimate.seconds for i in est.items)
    else:
        assert sum(b.seconds for b in stages if b.row in ("load", "inference", "ensembling")) == pytest.approx(work)


def check_drawing(est: BudgetEstimate) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.text import Text

    fig = draw_chart(est)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        x0, x1 = ax.get_xlim()
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert bars
        for p in bars:  # every bar inside the axes, none clipped
            assert x0 - 1e-9 <= p.get_x() and p.get_x() + p.get_width() <= x1 + 1e-9, (p.get_x(), p.get_width(), x1)
        for line in ax.collections:  # the bands' whiskers too
            for seg in getattr(line, "get_segments", lambda: [])():
                assert all(x0 - 1e-9 <= x <= x1 + 1e-9 for x, _ in seg), seg
        figure = fig.bbox
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
                 and t.get_window_extent(renderer).width > 0]
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
        for text, box in boxes:  # every label inside the picture
            assert box.x0 >= figure.x0 - 1 and box.x1 <= figure.x1 + 1, (text, box, figure)
            assert box.y0 >= figure.y0 - 1 and box.y1 <= figure.y1 + 1, (text, box, figure)
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):  # and over no other
            overlap_w = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            overlap_h = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            assert overlap_w <= 1 or overlap_h <= 1, f"{a!r} over {b!r}"
        # The bars' times and the members' names stay inside the axes.
        axbox = ax.get_window_extent(renderer)
        labels = [t for t in ax.texts if t.get_gid() in ("time", "member")]
        assert len([t for t in labels if t.get_gid() == "time"]) == len([b for b in timeline(est) if not b.member])
        for t in labels:
            box = t.get_window_extent(renderer)
            assert axbox.x0 - 1 <= box.x0 and box.x1 <= axbox.x1 + 1, t.get_text()
    finally:
        plt.close(fig)


@pytest.mark.timeout(120)
def test_the_digits_chart_is_the_estimates_timeline(digits_estimate):
    check_timeline(digits_estimate)
    check_drawing(digits_estimate)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("lanes", [1, 2, 4])
@pytest.mark.parametrize("limit", LIMITS)
def test_many_members_on_many_lanes(lanes, limit):
    est = synthetic(lanes, parse_duration(limit))
    check_timeline(est)
    check_drawing(est)


@pytest.mark.timeout(180)
def test_chart_through_the_cli_on_two_lanes(digits_bundle, tmp_path, capsys):
    from packager.cli import main

    png = tmp_path / "chart.png"
    code = main(["estimate", str(digits_bundle), "--target", "local", "--lanes", "2", "--rows", str(ROWS),
                 "--time-limit", "2m", "--chart", str(png), "--calibration", str(tmp_path / "cal.json")])
    out = capsys.readouterr().out
    assert code in (0, 3, 4) and f"chart written to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
