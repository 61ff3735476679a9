"""What a run leaves: the members' predictions combined, the submission formatted and written, the run report.

The last stage. :mod:`~runtime.output.ensemble` combines members row by row;
:mod:`~runtime.output.formats` turns combined values into the competition's
rows (values, arg-max, top-k, multi-label, long, RLE, or the postprocess hook);
:mod:`~runtime.output.submission` reads the sample submission and writes
``submission.csv`` atomically; :mod:`~runtime.output.report` is the run report.
"""
