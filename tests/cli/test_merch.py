"""`shoprank rules|experiments|report`: a thin layer that stores, rejects with exit 2, reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import _register, app, main
from data.catalog import Catalog
from data.models import Item


def _run(home: Path, *args: str):  # type: ignore[no-untyped-def]
    _register()
    return CliRunner().invoke(app, ["--home", str(home), *args])


def test_rules_experiments_and_report_commands(tmp_path: Path) -> None:
    Catalog([Item(item_id="i1", title="帳篷 Tent", brand="Acme", price=10, stock=3)]).save(
        tmp_path / "data" / "items.jsonl"
    )
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            {
                "id": "pin-1",
                "name": "Pin",
                "condition": {"query": {"text": "tent"}},
                "actions": [{"type": "pin", "pins": [{"item_id": "i1", "position": 1}]}],
            }
        )
    )
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "name": "bad",
                "actions": [{"type": "pin", "pins": [{"item_id": "zz", "position": 1}]}],
            }
        )
    )
    r = _run(tmp_path, "rules", "add", str(good))
    assert r.exit_code == 0 and "saved rule pin-1" in r.output
    with pytest.raises(SystemExit) as stop:  # main() turns the validation error into exit 2
        main(["--home", str(tmp_path), "rules", "add", str(bad)])
    assert stop.value.code == 2
    r = _run(tmp_path, "rules", "list", "--json")
    assert [x["id"] for x in json.loads(r.output)] == ["pin-1"]
    exp = tmp_path / "exp.json"
    exp.write_text(
        json.dumps(
            {
                "id": "e1",
                "name": "x",
                "variants": [{"name": "A", "share": 1}, {"name": "B", "share": 1}],
            }
        )
    )
    r = _run(tmp_path, "experiments", "create", str(exp), "--start")
    assert r.exit_code == 0 and "e1: running" in r.output
    r = _run(tmp_path, "report", "--json", "--experiment", "e1")
    assert r.exit_code == 0 and json.loads(r.output)["experiment"] == "e1"
    r = _run(tmp_path, "report", "--start", "2025-02-01", "--end", "2025-01-01")
    assert r.exit_code == 2


def test_rules_preview_shows_before_and_after_and_refuses_a_rule_that_would_be_rejected(
    tmp_path: Path,
) -> None:
    items = [Item(item_id=f"i{n}", title=f"帳篷 Tent {n}", price=10, stock=3) for n in range(5)]
    Catalog(items).save(tmp_path / "data" / "items.jsonl")
    draft = tmp_path / "draft.json"
    pin = {"type": "pin", "pins": [{"item_id": "i3", "position": 1}]}
    draft.write_text(json.dumps({"name": "Pin i3", "condition": {"contexts": ["feed"]},
                                 "actions": [pin]}))
    r = _run(tmp_path, "rules", "preview", str(draft), "--sample", "0", "--k", "3")
    assert r.exit_code == 0, r.output
    assert "fires — pinned i3 at 1" in r.output
    first = next(line for line in r.output.splitlines() if line.startswith("│ 1 "))
    assert first.split("│")[3].split()[0] == "i3"  # after: the pinned item first
    assert first.split("│")[2].split()[0] != "i3"  # before: where the feed had it
    pin["pins"] = [{"item_id": "nope", "position": 1}]
    draft.write_text(json.dumps({"name": "Pin nope", "actions": [pin]}))
    r = _run(tmp_path, "rules", "preview", str(draft), "--sample", "0")
    assert r.exit_code == 2 and "rejected" in r.output
