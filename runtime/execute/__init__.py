"""Doing the work the plan says: lanes and their workers, the executor that coordinates them, checkpoints.

The third stage. :mod:`~runtime.execute.lanes` chooses the lanes (a GPU each,
or a share of the cores); :mod:`~runtime.execute.executor` runs the plan's steps
on them chunk by chunk, measuring, re-planning on drift and degrading to cheaper
rungs; :mod:`~runtime.execute.predict` turns rows into a member's predictions
through a backend; :mod:`~runtime.execute.checkpoint` saves every finished chunk
so a killed run resumes; :mod:`~runtime.execute.memory` watches RAM and GPU memory.
"""
