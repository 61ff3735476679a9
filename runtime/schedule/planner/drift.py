"""When the running step has drifted from its plan: :func:`should_replan`, :func:`projected_finish`,
and the live cost blended with the profiled one (:func:`estimate_s_per_row`).
"""

from __future__ import annotations

from runtime.schedule.planner.model import _EPS, Plan, Step, _check_number


def should_replan(
    plan: Plan,
    step: Step,
    now: float,
    rows_done: int,
    tolerance: float = 0.1,
    *,
    s_per_row: float | None = None,
) -> bool:
    """Whether the running step drifted past what the plan allowed.

    The step's finish is projected from its throughput since its planned setup
    end (or from ``s_per_row``). It may overrun by ``tolerance *
    step.expected_s`` but never by more than the plan's slack, past which the
    last step would end after the limit. A partial step is time-boxed (stop
    it at ``finish``), so it never asks for a replan.

    Args:
        plan: The plan being executed.
        step: Its step now running.
        now: Current time.
        rows_done: Rows of *this step* finished so far (not the member's total).
        tolerance: Allowed overrun as a fraction of the step's expected seconds.
        s_per_row: Measured seconds per row to project with instead.

    Raises:
        ValueError: ``step`` not in ``plan``, or an argument out of range.
    """
    if step not in plan.steps:
        raise ValueError(f"step {step.member!r}/{step.variant!r} is not part of the plan")
    if not 0 <= rows_done <= step.rows:
        raise ValueError(f"rows_done must be in 0..{step.rows} for step {step.member!r}, got {rows_done}")
    _check_number("tolerance", tolerance)
    if s_per_row is not None:
        _check_number("s_per_row", s_per_row)
    if step.partial:
        return False
    allowed = step.finish + min(tolerance * step.expected_s, max(plan.slack_s, 0.0))
    return projected_finish(step, now, rows_done, s_per_row=s_per_row) > allowed + _EPS


def projected_finish(step: Step, now: float, rows_done: int, *, s_per_row: float | None = None) -> float:
    """When the running ``step`` will end, projected from its throughput since its
    planned setup end (or from ``s_per_row``); ``rows_done`` counts rows of this step."""
    rows_left = step.rows - rows_done
    if s_per_row is not None:
        rate = s_per_row
    elif rows_done:
        rate = max(now - step.start - step.setup_s, 0.0) / rows_done
    else:
        rate = (step.expected_s - step.setup_s) / step.rows if step.rows else 0.0
    # With no row back yet the setup may still be running: rows start after it.
    return (now if rows_done else max(now, step.start + step.setup_s)) + rows_left * rate


def estimate_s_per_row(
    observed_rows: float,
    observed_s: float,
    prior: float | None,
    *,
    prior_rows: float = 64.0,
) -> float:
    """Blend a profiled cost with the live throughput of the first batches.

    The prior counts as ``prior_rows`` pseudo-rows, so the live measurement's
    weight ``observed_rows / (observed_rows + prior_rows)`` grows towards 1::

        (prior * prior_rows + observed_s) / (prior_rows + observed_rows)

    Args:
        observed_rows: Rows measured live (leave warm-up batches out).
        observed_s: Seconds those rows took, inference only.
        prior: Seconds per row from the stored profile, or None.
        prior_rows: How many live rows the prior is worth.

    Raises:
        ValueError: Negative inputs, or neither a prior nor an observation.
    """
    _check_number("observed_rows", observed_rows)
    _check_number("observed_s", observed_s)
    _check_number("prior_rows", prior_rows)
    if prior is None:
        if observed_rows == 0:
            raise ValueError("cannot estimate s_per_row: no prior and no observed rows")
        return observed_s / observed_rows
    _check_number("prior", prior)
    if prior_rows == 0 and observed_rows == 0:
        return prior
    return (prior * prior_rows + observed_s) / (prior_rows + observed_rows)
