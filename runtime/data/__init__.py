"""The rows to predict: the test table read in pieces, images decoded, text tokenised, inputs prepared ahead.

A run's first stage. :mod:`~runtime.data.tables` reads a CSV or Parquet test
table a block at a time (ids as text); :mod:`~runtime.data.testdata` holds the
ids and gives each member its inputs for a range of rows (missing values,
spools, the features hook's columns); :mod:`~runtime.data.text` tokenises text
into length-sorted, dynamically padded windows; :mod:`~runtime.data.loaders`
decode images (PIL, or DALI on a GPU); :mod:`~runtime.data.pipeline` prepares
the next chunks on threads while the current one is inferred.

Nothing here plans or runs a model: the data stage knows no schedule.
"""

from runtime.data.testdata import TestData, apply_tta, open_test_data, read_table

__all__ = ["TestData", "apply_tta", "open_test_data", "read_table"]
