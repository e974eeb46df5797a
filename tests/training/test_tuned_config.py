"""`shoprank tune --save`: the chosen settings as a training config that loads back."""

from __future__ import annotations

from pathlib import Path

from training.config import default_config, load_config
from training.tune import Trial, TuneResult, write_tuned_config


def test_tuned_config_round_trip(tmp_path: Path) -> None:
    cfg = default_config(tmp_path / "shop")
    res = TuneResult(
        "ndcg@10", [],
        {"als": Trial("als", {"factors": 32, "alpha": 5.0}, 0.3, {}),
         "ease": Trial("ease", {"l2": 200.0}, 0.4, {})},
        {"als": {"ndcg@10": 0.31}, "ease": {"ndcg@10": 0.41}},
    )
    out = tmp_path / "elsewhere" / "tuned.toml"
    out.parent.mkdir()
    write_tuned_config(out, cfg, res)
    back = load_config(out)
    params = {m.algorithm: m.params for m in back.models}
    assert params["als"] == {"factors": 32, "alpha": 5.0}  # the tuned one replaced
    assert params["ease"] == {"l2": 200.0}  # a tuned algorithm the config lacked is added
    assert params["item_knn"] == {m.algorithm: m.params for m in cfg.models}["item_knn"]
    assert back.matrix == cfg.matrix and back.evaluation == cfg.evaluation
    assert "als: {'factors': 32, 'alpha': 5.0}" in out.read_text()
