"""The table of published GPU figures: every row parses, cites a source that exists and is counted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from packager.estimate.price.figures import BACKENDS, GPUS, KINDS, PRECISIONS, TABLE, FigureTableError, load_figures
from packager.estimate.price.gpufit import load_costs

pytestmark = pytest.mark.timeout(60)


def test_every_row_parses_and_cites_a_source_that_exists():
    table = load_figures()
    assert len(table.figures) == 99 and len(table.held_out) == 32
    for f in table.figures:
        source = table.sources[f.source]  # a KeyError here is a row citing nothing
        assert f.gpu in GPUS and f.kind in KINDS and f.precision in PRECISIONS and f.backend in BACKENDS
        assert f.throughput > 0 and f.batch >= 1 and all(d > 0 for d in f.input_shape)
        assert f.conditions and f.source_quote and f.backend_detail
        assert source.repo in f.source_url and re.fullmatch(r"[0-9a-f]{40}", source.commit)
        if not f.throughput_published:  # derived from the published per-batch latency, arithmetic only
            assert f.throughput == pytest.approx(f.batch * 1000 / f.latency_ms, rel=1e-3)
    assert {f.gpu for f in table.held_out} == set(GPUS)  # held-out rows on every GPU


def test_every_row_has_its_model_counted():
    """The fit stands on each row's model counted at its size (benchmarks/gpu_estimate.py --write-costs)."""
    table, costs = load_figures(), load_costs()
    assert set(costs.work) == {f.id for f in table.figures}
    bert = costs.work["trt-bert-base-s128-b128-fp16-t4"]
    # BERT-base at 128 tokens: 2 x 85M encoder weights x 128 tokens plus attention, about 22.4 GFLOP a sequence.
    assert 21e9 < sum(f * n for _, f, _, n in bert.compute) / 128 < 24e9
    assert {w for w, *_ in costs.work["mlperf30-3dunet-offline-int8-a100pcie"].compute} == {"conv3d"}
    assert "dwconv" in {w for w, *_ in costs.work["pt-effnet-b0-224-b256-amp-a100"].compute}


def _damaged(tmp_path: Path, old: str, new: str) -> Path:
    text = TABLE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "gpu_figures.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize("old, new, message", [
    ('source = "trt_demo_bert_t4"', 'source = "a_blog_post"', r"figure 1 .*'source' = 'a_blog_post' names no \[sources\]"),
    ("throughput = 971.4", "throughput = 1971.4", r"figure 1 .*does not match batch \* 1000 / latency_ms"),
    ("throughput = 971.4", "throughput = -1", r"figure 1 .*'throughput' = -1; expected a positive number"),
    ('precision = "fp16"', 'precision = "fp12"', r"figure 1 .*'precision' = 'fp12'; expected one of fp32"),
    ('gpu = "T4"', 'gpu = "V100"', r"'gpu' = 'V100'; expected one of T4, L4, A100, H100"),
    ("batch = 128\n", "", r"figure 1 .*field 'batch' is missing"),
    ('id = "trt-bert-base-s128-b128-int8-t4"', 'id = "trt-bert-base-s128-b128-fp16-t4"', r"appears twice"),
    ('commit = "1d6bf36034bb07fc88d924ebf5d34d358298e545"', 'commit = "main"', r"\[sources.trt_demo_bert_t4\].*40-digit"),
    ("schema_version = 1", "schema_version = 2", r"schema_version = 2; expected 1"),
])
def test_a_damaged_table_is_refused_naming_the_row_and_field(tmp_path, old, new, message):
    with pytest.raises(FigureTableError, match=message):
        load_figures(_damaged(tmp_path, old, new))


def test_an_unreadable_table_is_a_clear_error(tmp_path):
    (tmp_path / "bad.toml").write_text("[[figure]\n", encoding="utf-8")
    with pytest.raises(FigureTableError, match="not valid TOML"):
        load_figures(tmp_path / "bad.toml")
    with pytest.raises(FigureTableError, match="cannot read"):
        load_figures(tmp_path / "missing.toml")
