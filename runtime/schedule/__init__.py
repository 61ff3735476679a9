"""Deciding what runs when: the budget on the notebook's clock, each member's costs, probing, the planner.

The second stage. :mod:`~runtime.schedule.budget` turns the time limit,
margin and reserve into a deadline on the notebook's clock;
:mod:`~runtime.schedule.costs` keeps what each member costs per row, from the
bundle's profile until this machine measures it; :mod:`~runtime.schedule.probing`
decides which members are measured at the start of a run, on which rung;
:mod:`~runtime.schedule.planner` is pure: from costs, a clock reading and a
deadline it returns a plan (which members, which rungs, on which lanes), with
no I/O and no sleeping, so every deadline decision is testable on a fake clock.
"""
