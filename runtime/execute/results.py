"""What each member delivered, for the run report: rows written, rows left out and why, its final status.

Called once the executor's loop is over (:func:`fill_reports`), and for the
share of the ensemble's weight and value the submission got (:func:`delivered`).
A row counts as delivered only when its prediction reaches the submission: not
a row whose inputs or outputs were not finite, nor one the features hook failed
on (computed on zeros, never written).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from runtime.data.testdata import TestData
from runtime.execute.state import MemberRun
from runtime.execute.worker import LaneWorker
from runtime.schedule.costs import CostModel
from runtime.status import Status


def unfed(test: TestData, a: int, b: int) -> int:
    """Rows of ``[a, b)`` the features hook failed on: computed on zeros, never written."""
    features = test.features
    failed = features.failed if features is not None else None
    return int(failed[a:b].sum()) if failed is not None else 0


def written(st: MemberRun, test: TestData, a: int, b: int) -> int:
    """Rows of the finished chunk ``[a, b)`` whose predictions reach the submission."""
    return max(b - a - st.skipped.get((a, b), 0) - unfed(test, a, b), 0)


def delivered(states: Mapping[str, MemberRun], test: TestData) -> tuple[float, float]:
    """Shares of the ensemble's weight and value delivered, row-weighted (failed members count 0)."""
    weight = value = 0.0
    for st in states.values():
        if st.status == Status.FAILED or not st.rows_total:
            continue
        weight += st.member.weight * sum(written(st, test, a, b) for a, b in st.covered) / st.rows_total
        factors = sum(written(st, test, a, b) * st.member.variants[i].value_factor for (a, b), i in st.covered.items())
        value += st.member.value * factors / st.rows_total
    total_w = sum(st.member.weight for st in states.values())
    total_v = sum(st.member.value for st in states.values())
    return (weight / total_w if total_w else 0.0), (value / total_v if total_v else 0.0)


def _report_skipped(st: MemberRun, test: TestData) -> None:
    """Rows of the finished chunks without a prediction, told apart by cause."""
    mr = st.report
    total = sum(st.skipped.get(c, 0) for c in st.covered)
    bad = test.nonfinite(st.member)
    mr.missing_policy = st.member.missing_policy(test.spec)[0]
    mr.missing_columns = test.missing_columns(st.member) if bad is not None else {}
    inputs = 0
    if bad is not None and mr.missing_policy == "skip":
        inputs = sum(int(bad[a:b].sum()) for a, b in st.covered)
    mr.rows_skipped_input = min(inputs, total)
    # outputs of resumed chunks were checked by the run that computed them: count them from the files
    mr.rows_nonfinite_output = max(mr.rows_nonfinite_output, total - mr.rows_skipped_input)


def _skip_notes(st: MemberRun) -> list[str]:
    mr, notes = st.report, []
    if mr.rows_skipped_input:
        notes.append(f"{mr.rows_skipped_input} row(s) skipped: non-finite inputs in {', '.join(mr.missing_columns)}")
    if mr.rows_nonfinite_output:
        notes.append(f"{mr.rows_nonfinite_output} row(s) dropped: non-finite outputs")
    if mr.rows_unfed:
        notes.append(f"{mr.rows_unfed} row(s) not written: the features hook failed on them")
    return notes


def fill_reports(states: Mapping[str, MemberRun], workers: Sequence[LaneWorker], test: TestData, costs: CostModel,
                 event: Callable[[str], None]) -> None:
    """Each member's report once the loop is over: rungs used, rows, skipped rows, status and reason."""
    for st in states.values():
        st.close_progress("stopped")
        mr = st.report
        used = sorted(set(st.covered.values()))
        mr.variants = [st.member.variants[i].name for i in used]
        counts: dict[int, int] = {}
        for (a, b), i in st.covered.items():
            counts[i] = counts.get(i, 0) + b - a
        mr.variant = st.member.variants[max(counts, key=counts.__getitem__)].name if counts else st.member.variants[0].name
        mr.rows_unfed = sum(unfed(test, a, b) for a, b in st.covered)
        mr.rows = sum(written(st, test, a, b) for a, b in st.covered)
        mr.batch_size = min((w.batches[st.name] for w in workers if st.name in w.batches), default=st.start_batch)
        if st.covered or st.status != Status.FAILED:  # a member failed before any row (its data may not exist) has none
            _report_skipped(st, test)
        mr.s_per_row = costs.s_per_row(st.name, mr.variant)
        if st.status != Status.FAILED and st.rows_done and not st.rows_covered and mr.rows_nonfinite_output:
            st.status = Status.FAILED  # not one finite output: a broken model (or an fp16 overflow), said loudly
            mr.reason = f"failed: non-finite outputs in every one of the {st.rows_done} rows it ran"
            event(f"{st.name}: {mr.reason}")
        _final_status(st, used)


def _final_status(st: MemberRun, used: list[int]) -> None:
    """The report's word for the member: failed, done or degraded, partial, or dropped; and why."""
    mr = st.report
    if st.status == Status.FAILED:
        mr.status, mr.rows = Status.FAILED, 0  # its rows are left out of the submission
    elif st.rows_total and not st.missing():
        mr.status = Status.DONE if used == [0] else Status.DEGRADED
        mr.reason = "; ".join([*(st.notes if used != [0] else []), *_skip_notes(st)])
    elif st.rows_done:
        mr.status = Status.PARTIAL
        mr.reason = "; ".join([*st.notes, st.drop_reason or "stopped at the limit", *_skip_notes(st)])
    else:
        mr.status = Status.DROPPED
        mr.reason = st.drop_reason or "not started: no time left"


__all__ = ["delivered", "fill_reports", "unfed", "written"]
