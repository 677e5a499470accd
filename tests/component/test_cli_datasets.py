"""`local-ml-flow dataset add | list` and `run --name` on the embedded stack, as typed."""

from __future__ import annotations

import json
from pathlib import Path

from tests import datasets
from tests.component.test_cli_embedded import run_cli
from tests.conftest import free_port


def test_add_a_dataset_then_train_on_it_by_name(tmp_path: Path):
    state = {"LMF_STATE_DIR": str(tmp_path / "state"), "LMF_EMBEDDED_PORT": str(free_port())}
    homes = tmp_path / "homes.csv"
    homes.write_bytes(datasets.csv(datasets.mixed()))

    added = run_cli("dataset", "add", "homes", str(homes), "--target", "price", "--embedded",
                    env=state)  # fmt: skip
    assert added.returncode == 0, added.stderr
    lines = added.stdout.splitlines()
    assert lines[0] == "registered homes: 200 rows, regression of 'price'"
    assert any(line.split()[:2] == ["note", "text"] and "not a feature" in line for line in lines)

    listed = run_cli("dataset", "list", "--embedded", "--json", env=state)
    assert listed.returncode == 0, listed.stderr
    assert [d["name"] for d in json.loads(listed.stdout)["datasets"]] == ["homes"]

    run = run_cli("run", "--embedded", "--name", "homes", "--model", "ridge", "--json", env=state)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["dataset"], result["model"]) == ("homes", "ridge")
    assert result["r2"] > 0.8
    assert "note" not in result["columns"]

    chosen = run_cli("run", "--embedded", "--name", "homes", "--features", "size,city", env=state)
    assert chosen.returncode == 0, chosen.stderr
    assert "model:  linear on size, city" in chosen.stdout

    listed = run_cli("dataset", "list", "--embedded", env=state)
    assert "current run" in listed.stdout

    shown = run_cli("promotions", "--dataset", "homes", "--embedded", "--json", env=state)
    assert shown.returncode == 0, shown.stderr
    log = json.loads(shown.stdout)["promotions"]
    assert [(p["run_id"], p["by"]) for p in log][-1:] == [(result["run_id"], "cli")]
    assert log[-1]["previous_run_id"] is None

    again = run_cli("reproduce", result["run_id"], "--dataset", "homes", "--embedded", env=state)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "identical: yes" in again.stdout
    assert f"model sha256: {result['model_sha256']}" in again.stdout


def test_a_version_that_breaks_the_schema_is_refused_with_every_problem(tmp_path: Path):
    state = {"LMF_STATE_DIR": str(tmp_path / "state"), "LMF_EMBEDDED_PORT": str(free_port())}
    first = tmp_path / "v1.csv"
    first.write_bytes(datasets.csv(datasets.mixed()))
    assert run_cli("dataset", "add", "homes", str(first), "--target", "price", "--embedded",
                   env=state).returncode == 0  # fmt: skip
    changed = datasets.mixed(seed=5).astype(object)
    changed.loc[0, "garden"] = "perhaps"
    second = tmp_path / "v2.csv"
    second.write_bytes(datasets.csv(changed))

    refused = run_cli("dataset", "add", "homes", str(second), "--embedded", env=state)
    assert refused.returncode == 1
    assert "column 'garden': expected yes or no at line 2" in refused.stderr
    assert "--replace-schema" in refused.stderr
    assert "Traceback" not in refused.stderr

    replaced = run_cli("dataset", "add", "homes", str(second), "--replace-schema", "--embedded",
                       env=state)  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.startswith("new version of homes")


def test_mistakes_are_one_line(tmp_path: Path):
    state = {"LMF_STATE_DIR": str(tmp_path / "state"), "LMF_EMBEDDED_PORT": str(free_port())}
    missing = run_cli("dataset", "add", "x", str(tmp_path / "nope.csv"), "--embedded", env=state)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: {tmp_path / 'nope.csv'} does not exist"
    iris = tmp_path / "iris.csv"
    iris.write_bytes(datasets.csv(datasets.iris()))
    bad_name = run_cli("dataset", "add", "Iris", str(iris), "--target", "species", "--embedded",
                       env=state)  # fmt: skip
    assert bad_name.returncode == 1
    assert "dataset name 'Iris' is invalid" in bad_name.stderr
    unknown = run_cli("run", "--embedded", "--name", "ghost", env=state)
    assert unknown.returncode == 1
    assert "error: no dataset named 'ghost'" in unknown.stderr
    mixed_up = run_cli("run", "--embedded", "--features", "a", env=state)
    assert mixed_up.returncode == 1
    assert "--features is for a registered dataset" in mixed_up.stderr
