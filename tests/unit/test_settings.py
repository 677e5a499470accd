"""Settings fail fast on bad values."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from local_ml_flow.settings import Settings
from tests.conftest import ROOT


def test_defaults():
    settings = Settings(_env_file=None)
    assert settings.data_bucket == "local-ml-flow-data"
    assert settings.models_bucket == "local-ml-flow-models"
    assert (settings.model, settings.feature_set, settings.test_size) == ("linear", "all", 0.2)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LMF_DATA_BUCKET", "Bad_Bucket", "not a valid S3 bucket name"),
        ("LMF_TEST_SIZE", "1.5", "less than 1"),
        ("LMF_MODEL", "forest", "linear"),
        ("LMF_FEATURE_SET", "most", "seed"),
        ("LMF_EMBEDDED_PORT", "0", "greater than 0"),
        ("LMF_STATE_DIR", "", "must not be empty"),
        ("LMF_STATE_DIR", "  ", "must not be empty"),
        ("LMF_MODELS_BUCKET", "local-ml-flow-data", "must differ"),
        ("LMF_DATASET_SHA256", "abc", "64 lowercase hex"),
        ("LMF_MAX_PREDICT_BYTES", "0", "greater than 0"),
        ("LMF_BODY_TIMEOUT_S", "-1", "greater than 0"),
        ("LMF_MIN_R2", "nan", "finite number"),
        ("LMF_MIN_R2", "-inf", "finite number"),
        ("LMF_BODY_TIMEOUT_S", "inf", "finite number"),
        ("LMF_MODEL_REFRESH_S", "nan", "finite number"),
        ("LMF_TEST_SIZE", "nan", "finite number"),
        ("LMF_BODY_DEADLINE_S", "nan", "finite number"),
        ("LMF_BODY_DEADLINE_S", "inf", "finite number"),
        ("LMF_BODY_DEADLINE_S", "0", "greater than 0"),
        ("LMF_BODY_DEADLINE_S", "-5", "greater than 0"),
        ("LMF_DATA_BUCKET", "local-ml-flow-data\n", "not a valid S3 bucket name"),
    ],
)
def test_bad_values_fail_at_startup(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None)


def test_allowed_hosts_is_a_comma_separated_list(monkeypatch):
    assert Settings(_env_file=None).allowed_hosts == []
    monkeypatch.setenv("LMF_ALLOWED_HOSTS", " api, My-Host.lan ,,[fd00::1]")
    assert Settings(_env_file=None).allowed_hosts == ["api", "my-host.lan", "fd00::1"]


def test_env_file_is_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("LMF_FEATURE_SET=seed\n")
    monkeypatch.chdir(tmp_path)
    assert Settings().feature_set == "seed"


def test_env_example_documents_every_variable_and_loads(tmp_path, monkeypatch):
    example = (ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"LMF_{name.upper()}=" in example, f"LMF_{name.upper()} is not in .env.example"
    (tmp_path / ".env").write_text(example)
    monkeypatch.chdir(tmp_path)
    assert Settings() == Settings(_env_file=None)


def test_no_home_directory_is_not_fatal(monkeypatch):
    """AWS Lambda may run the functions without a home directory."""

    def no_home() -> object:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr("pathlib.Path.home", no_home)
    monkeypatch.delenv("LMF_CACHE_DIR", raising=False)
    expected = Path(tempfile.gettempdir()) / "local-ml-flow"
    assert Settings(_env_file=None).cache_dir == expected
