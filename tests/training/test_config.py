from __future__ import annotations

from pathlib import Path

import pytest

from models import model_class
from training.config import TrainConfig, default_config, load_config
from training.errors import ConfigError
from training.jobs import matrix_config

SAMPLE = Path(__file__).resolve().parents[2] / "training" / "sample_train.toml"


def test_sample_config_parses_and_every_model_is_buildable() -> None:
    cfg = load_config(SAMPLE)
    assert cfg.data.format == "shoprank" and cfg.data.events[0].is_absolute()
    specs = cfg.model_specs()
    assert {s.algorithm for s in specs} >= {"als", "item_knn", "bought_together", "content"}
    for s in specs:
        assert s.create().algorithm == s.algorithm
    m = matrix_config(cfg)
    assert m.weights["purchase"] == 8.0 and m.half_life_days == 30.0
    assert cfg.tune["als"]["factors"] == [32, 64, 128]


def test_defaults_match_the_sample() -> None:
    sample, default = load_config(SAMPLE), TrainConfig()
    assert sample.matrix.model_dump(exclude={"weights"}) == default.matrix.model_dump(
        exclude={"weights"}
    )
    assert sample.evaluation == default.evaluation and sample.train == default.train
    for m in sample.models:  # the sample's params are each algorithm's defaults
        assert model_class(m.algorithm)(**m.params).params == model_class(m.algorithm)().params or \
            m.algorithm == "bought_together"


@pytest.mark.parametrize(("text", "message"), [
    ("[matrix]\nhalf_life = 3", "matrix.half_life: Extra inputs are not permitted"),
    ("[matrix.weights]\nlike = 1.0", "unknown event types"),
    ("[evaluation]\nsplit = 'sideways'", "evaluation.split"),
    ("[[models]]\nname = 'x'\nalgorithm = 'magic'", "unknown algorithm 'magic'"),
    ("[[models]]\nname = 'x'\nalgorithm = 'als'\nparams = { factor = 3 }", "models.x.params"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_configs_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "t.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(p).model_specs()


def test_default_config_finds_the_shop_files(tmp_path: Path) -> None:
    for f in ("events.jsonl", "items.jsonl", "users.jsonl"):
        (tmp_path / f).write_text("")
    cfg = default_config(tmp_path)
    assert cfg.data.events == [tmp_path / "events.jsonl"] and cfg.data.truth is None
    assert cfg.data.items == tmp_path / "items.jsonl"
