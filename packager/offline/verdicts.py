"""What a rehearsal concludes: the verdicts, the failure Kaggle would report, and the result returned.

A verdict names what went wrong the way a competitor meets it on Kaggle
(``time limit exceeded``: a Notebook Timeout...). :func:`judge_notebook` reads
the executor's outcome for what every rehearsal judges alike (a timeout, an
exception, a dead kernel, a network access); the rest is the file run's
(:mod:`.simulate`: the submission file) or the evaluation API's
(:mod:`.serve_simulate`: the gateway's result).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

PASSED = "passed"
NETWORK = "network access attempted"
TIMEOUT = "time limit exceeded"
EXCEPTION = "notebook raised an exception"
NOT_FOUND = "submission.csv not found"
INVALID = "submission invalid"
#: A file of the bundle fails its checksum: whatever the notebook did, this is not the bundle that was packaged.
DAMAGED = "damaged bundle"
CPU_FALLBACK = "GPU target ran on the CPU"
#: The features or postprocess hook failed on most rows: a valid file, mostly the fallback's values.
HOOKS_FAILED = "hooks failed on most rows"

#: The failure Kaggle would report for each verdict (KAGGLE.md's list).
KAGGLE_FAILURES = {
    NETWORK: "Notebook Threw Exception",
    TIMEOUT: "Notebook Timeout",
    EXCEPTION: "Notebook Threw Exception",
    NOT_FOUND: "Submission CSV Not Found",
    INVALID: "Submission Scoring Error",
    # Kaggle reports nothing at once; the same models at CPU speed on the hidden test set:
    CPU_FALLBACK: "none at once, but a Notebook Timeout or a thin submission at full size",
    HOOKS_FAILED: "none at once, but a submission mostly of the fallback's values: a poor score",
}
#: A dead kernel is most often out of memory.
DEAD_KERNEL_FAILURE = "Notebook Exceeded Allowed Compute"

NETWORK_ERRORS = ("NetworkBlockedError", "gaierror")
NETWORK_TEXT = (
    "Network is unreachable", "Temporary failure in name resolution", "Name or service not known",
    "No address associated with hostname", "Failed to establish a new connection", "network access blocked",
)


@dataclass(frozen=True)
class SimulationResult:
    """What a simulated Kaggle rerun produced.

    Attributes:
        verdict: One of ``passed``, ``network access attempted``, ``time limit
            exceeded``, ``notebook raised an exception``, ``submission.csv not
            found``, ``submission invalid``, ``damaged bundle`` (a bundle file
            fails its checksum; checked before the notebook runs, and it wins
            over the notebook's own verdict, which the details give), ``GPU
            target ran on the CPU`` (the run report's ``device_warnings``: a
            bundle for a GPU target ran on the CPU provider although this
            machine has a GPU).
        kaggle_failure: What Kaggle would report (``Notebook Timeout``...); None when passed, or when
            the bundle is damaged but the notebook still ran to a valid submission.
        details: What went wrong (the cell's error, what is wrong in the submission), or notes.
        seconds: The notebook's run time, from its kernel being ready.
        isolation: How the network was cut off.
        submission: The kept ``submission.csv``; None when there is none or nothing was kept.
        report: The run report (``run_report.json``), when the runtime wrote one.
        report_text: The run report as the notebook printed it.
        notebook: The kept executed notebook, with its outputs.
        network_attempts: Outside connections and lookups the kernel's Python tried.
    """

    verdict: str
    kaggle_failure: str | None
    details: str
    seconds: float
    isolation: str
    submission: Path | None = None
    report: dict[str, Any] | None = None
    report_text: str = ""
    notebook: Path | None = None
    network_attempts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED

    def summary(self) -> str:
        """The verdict, its details and the run report, for a terminal."""
        kaggle = self.kaggle_failure or "no failure, but the run left out what the damage belongs to"
        head = "verdict: passed" if self.passed else f"verdict: {self.verdict} (Kaggle: {kaggle})"
        lines = [head]
        if self.details:
            lines.append(textwrap.indent(self.details, "  "))
        lines.append(f"notebook ran {self.seconds:.1f} s; network isolation: {self.isolation}")
        if self.submission:
            lines.append(f"submission: {self.submission}")
        if self.notebook:
            lines.append(f"executed notebook: {self.notebook}")
        if self.report_text:
            lines += ["run report:", textwrap.indent(self.report_text.rstrip(), "  ")]
        return "\n".join(lines)


def examples(items: Sequence[str], n: int = 3) -> str:
    """The first ``n`` items, joined, with "..." where there are more."""
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def judge_notebook(outcome: Mapping[str, Any], wall: Mapping[str, Any], attempts: Sequence[str],
                   limit_s: float) -> tuple[str, str] | None:
    """The verdict of a notebook that ran out of time, raised, died or reached the network; None: it ran through."""
    status = outcome.get("status")
    tried = f"the kernel tried to reach: {examples(sorted(set(attempts)))}" if attempts else ""
    if wall["killed"] or status == "timeout":
        where = f" in cell {outcome['cell']}" if outcome.get("cell") is not None else ""
        how = "the executor was killed" if wall["killed"] else "execution was stopped"
        lines = [f"the notebook ran past the {limit_s:g} s limit{where}; {how}", outcome.get("source", ""), tried]
        return TIMEOUT, "\n".join(filter(None, lines))
    if status in ("error", "dead"):
        error = f"cell {outcome.get('cell')}: {outcome.get('ename')}: {outcome.get('evalue')}"
        text = " ".join(str(outcome.get(k, "")) for k in ("ename", "evalue", "traceback"))
        if attempts or outcome.get("ename") in NETWORK_ERRORS or any(t in text for t in NETWORK_TEXT):
            return NETWORK, "\n".join(filter(None, [error, tried or "the error is a failed network access"]))
        if status == "dead":
            error += " (the kernel died: out of memory, or a crash in native code)"
        return EXCEPTION, "\n".join(filter(None, [error, outcome.get("traceback_tail", "")]))
    return None


__all__ = ["CPU_FALLBACK", "DAMAGED", "DEAD_KERNEL_FAILURE", "EXCEPTION", "HOOKS_FAILED", "INVALID", "KAGGLE_FAILURES",
           "NETWORK", "NETWORK_ERRORS", "NETWORK_TEXT", "NOT_FOUND", "PASSED", "TIMEOUT", "SimulationResult",
           "examples", "judge_notebook"]
