"""How busy the machine was while a profile was measured: the other processes' share of its cores.

A profile taken on a busy machine keeps the fastest of its repeats, but its figures are uncertain:
the profile stores the share (its ``load``), and the estimate widens the bands of a profile measured
over :data:`BUSY` (:mod:`packager.estimate.price.noise`).
"""

from __future__ import annotations

import time
from typing import Any

from runtime.profile import Load

#: Other processes using more than this share of the cores while profiling make every figure suspect.
BUSY = 0.25


class LoadMeter:
    """The CPU time other processes took while the profile was measured (psutil; nothing without it).

    :meth:`read` gives the profile's :class:`~runtime.profile.Load` (``seconds``, ``cores``,
    ``others_cpu_share``, ``steal_share``; empty without psutil): the whole machine's
    busy CPU time (steal included: a VM's neighbours) less this process's and its children's (the
    profile's own subprocesses), over the wall time and the cores.
    """

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError:
            self._start = None
            return
        self._psutil = psutil
        self._start = (time.perf_counter(), psutil.cpu_times(), psutil.Process().cpu_times())

    @staticmethod
    def _busy(t: Any) -> float:
        return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal", "guest"))

    @staticmethod
    def _own(t: Any) -> float:
        return t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)

    def read(self) -> Load:
        if self._start is None:
            return Load.from_dict({})
        t0, sys0, own0 = self._start
        wall, sys1, own1 = time.perf_counter() - t0, self._psutil.cpu_times(), self._psutil.Process().cpu_times()
        cores = self._psutil.cpu_count() or 1
        if wall <= 0:
            return Load.from_dict({})
        others = self._busy(sys1) - self._busy(sys0) - (self._own(own1) - self._own(own0))
        steal = getattr(sys1, "steal", 0.0) - getattr(sys0, "steal", 0.0)
        return Load.from_dict({"seconds": wall, "cores": cores,
                               "others_cpu_share": min(max(others / (wall * cores), 0.0), 1.0),
                               "steal_share": min(max(steal / (wall * cores), 0.0), 1.0)})


__all__ = ["BUSY", "LoadMeter"]
