"""The run log on moto: lifecycle, compare-and-swap promotion, repair, typed documents."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from local_ml_flow import handlers
from local_ml_flow.errors import (
    ConcurrentUpdateError,
    CorruptStateError,
    NonFiniteMetricsError,
    PromotionRefusedError,
    RunNotFoundError,
)
from local_ml_flow.events import RunParameters
from local_ml_flow.runlog import RunLog
from local_ml_flow.storage import ArtifactStore, make_store


def train(store: ArtifactStore, settings, run_id: str, **event) -> dict:
    return handlers.ingestion({"run_id": run_id, "promote": False, **event}, None, store=store)


def score(store: ArtifactStore, run_id: str) -> dict:
    return handlers.inference({"run_id": run_id}, None, store=store)


def test_a_queued_run_is_listed_before_any_function_ran(store):
    runs = RunLog(store)
    runs.queue("asked", {"feature_set": "seed"})
    record = runs.record("asked")
    assert (record["status"], record["parameters"], record["current"]) == (
        "queued",
        {"feature_set": "seed"},
        False,
    )
    assert [r["run_id"] for r in runs.list()] == ["asked"]


def test_a_run_left_without_result_is_reported_abandoned(store):
    runs = RunLog(store, stale_after_s=-1)  # every unfinished run is already too old
    runs.queue("ghost", {})
    record = runs.record("ghost")
    assert record["status"] == "failed"
    assert record["error"]["type"] == "AbandonedRunError"
    assert record["error"]["stage"] == "ingestion"


def test_promotion_is_a_compare_and_swap(store, settings, moto_endpoint):
    for run_id in ("a", "b", "c", "d"):
        train(store, settings, run_id)
        score(store, run_id)

    def promote(run_id: str) -> str:
        # each promoter with a client of its own, as separate processes would have
        own = make_store(settings, endpoint_url=moto_endpoint)
        return RunLog(own).promote(run_id).run_id

    with ThreadPoolExecutor(4) as pool:
        # a promoter that lost the race gets the pointer that won (its run was superseded)
        answers = set(pool.map(promote, ["a", "b", "c", "d"] * 2))
    assert answers <= {"a", "b", "c", "d"}
    runs = RunLog(store)
    winner = runs.latest()
    assert winner is not None
    assert winner.run_id in answers
    assert set(runs.root_runs().values()) == {winner.run_id}
    assert {runs.record(r)["status"] for r in "abcd"} == {"succeeded"}
    # the promotion log is one chain: each swap that won, newest first, ending at the pointer
    log = runs.promotions(limit=500)
    assert log[0].run_id == winner.run_id
    assert all(entry.recorded for entry in log)
    assert [e.previous_run_id for e in log] == [e.run_id for e in log[1:]] + [None]
    assert {e.by for e in log} == {"library"}


def test_a_stale_repair_landing_before_the_swap_is_undone_by_the_winner(
    store, settings, monkeypatch
):
    """A repair that read the pointer before a promotion's swap copies the older run over
    the root copies the promotion just wrote, and stops before the swap could show it: the
    winner notices and repairs (10 concurrent runs through the API once left model.joblib
    naming another run than the pointer)."""
    for run_id in ("old", "new"):
        train(store, settings, run_id)
        score(store, run_id)
    runs = RunLog(store)
    runs.promote("old")
    stale = RunLog(make_store(settings, endpoint_url=store.s3.meta.endpoint_url))
    write_roots = runs._write_roots

    def roots_then_a_stale_repair(run_id: str, score_text: str | None) -> None:
        write_roots(run_id, score_text)
        monkeypatch.setattr(runs, "_write_roots", write_roots)  # (once)
        old_score = stale.metrics("old")
        stale._write_roots("old", old_score.score if old_score else None)  # what it copies

    monkeypatch.setattr(runs, "_write_roots", roots_then_a_stale_repair)
    assert runs.promote("new").run_id == "new"
    assert set(runs.root_runs().values()) == {"new"}


def test_a_promotion_undone_by_a_deletion_is_in_the_log_too(store, settings, monkeypatch):
    """A deletion of the run that begins while it is promoted (its mark lands before the
    swap, after the promotion's first look): the run it replaced is current again, and the
    promotion log says both, newest first."""
    for run_id in ("old", "new"):
        train(store, settings, run_id)
        score(store, run_id)
    runs = RunLog(store)
    runs.promote("old", by="cli")
    write_roots = runs._write_roots

    def roots_then_a_deletion_mark(run_id: str, score_text: str | None) -> None:
        write_roots(run_id, score_text)
        mark = {"run_id": "new", "reason": "asked", "deleted_at": "2026-01-01T00:00:00Z"}
        store.put_json(store.data_bucket, "runs/new/deleted.json", mark)

    monkeypatch.setattr(runs, "_write_roots", roots_then_a_deletion_mark)
    with pytest.raises(RunNotFoundError):
        runs.promote("new", by="api")
    current = runs.latest()
    assert current is not None
    assert current.run_id == "old"
    log = [(e.run_id, e.previous_run_id, e.by, e.recorded) for e in runs.promotions()]
    assert log == [
        ("old", "new", "api", True),
        ("new", "old", "api", True),
        ("old", None, "cli", True),
    ]
    assert "deleted while it was promoted" in runs.promotions()[0].reason


def test_a_stale_pointer_write_is_refused(store, settings):
    train(store, settings, "x")
    score(store, "x")
    runs = RunLog(store)
    runs.promote("x")
    etag = store.read(store.data_bucket, "runs/latest.json").etag
    runs.promote("x")  # the pointer moved on
    with pytest.raises(ConcurrentUpdateError):
        store.put_json(store.data_bucket, "runs/latest.json", {"run_id": "x"}, if_match=etag)


def test_repair_makes_the_root_copies_follow_the_pointer(store, settings):
    for run_id in ("old", "new"):
        train(store, settings, run_id)
        score(store, run_id)
    runs = RunLog(store)
    runs.promote("old")
    # a promotion of "new" that died after its first root copy
    store.copy(
        store.models_bucket, "runs/new/model.joblib", "model.joblib", metadata={"run-id": "new"}
    )
    assert runs.root_runs()["model.joblib"] == "new"
    assert runs.repair() is True
    assert set(runs.root_runs().values()) == {"old"}
    assert runs.repair() is False  # nothing left to do


def test_non_finite_metrics_fail_the_run_and_it_is_never_promoted(store, settings):
    """A stored model predicting infinities (the input rules keep such data out, so the
    model is planted) fails inference; the run can never become current."""
    import skops.io

    train(store, settings, "inf")
    runs = RunLog(store)
    model = skops.io.loads(store.get_bytes(store.models_bucket, "runs/inf/model.skops"), trusted=[])
    model.coef_ = np.full_like(model.coef_, np.inf)
    digest = store.put_model(store.models_bucket, "runs/inf/model.skops", model)
    manifest = store.get_json(store.data_bucket, "runs/inf/manifest.json")
    document = json.dumps({**manifest, "model_sha256": digest}).encode()
    store.put_bytes(store.data_bucket, "runs/inf/manifest.json", document, "application/json")
    with pytest.raises(NonFiniteMetricsError, match="not finite"):
        score(store, "inf")
    record = runs.record("inf")
    assert (record["status"], record["error"]["stage"]) == ("failed", "inference")
    with pytest.raises(PromotionRefusedError, match="failed"):
        runs.promote("inf")
    assert runs.latest() is None
    assert not store.exists(store.data_bucket, "runs/inf/metrics.json")
    with pytest.raises(NonFiniteMetricsError, match="NaN or Infinity"):
        store.put_json(store.data_bucket, "x.json", {"r2": float("nan")})


def test_the_gate_refuses_a_run_below_min_r2(store, settings):
    train(store, settings, "seed", feature_set="seed")
    score(store, "seed")
    runs = RunLog(store, min_r2=0.5)
    with pytest.raises(PromotionRefusedError, match=r"R² 0\.3562, below LMF_MIN_R2 = 0\.5"):
        runs.promote("seed")
    record = runs.record("seed")
    assert (record["status"], record["error"]["stage"]) == ("failed", "promotion")
    assert runs.latest() is None


def test_documents_are_typed(store, settings):
    train(store, settings, "doc")
    key = "runs/doc/manifest.json"
    manifest = store.get_json(store.data_bucket, key)
    store.put_bytes(
        store.data_bucket,
        key,
        json.dumps({**manifest, "parameters": {"model": "forest"}}).encode(),
        "application/json",
    )
    runs = RunLog(store)
    with pytest.raises(CorruptStateError, match=f"s3://{store.data_bucket}/{key}"):
        runs.manifest("doc")
    assert runs.record("doc")["status"] == "corrupt"
    assert RunParameters().model == "linear"


def test_listing_keeps_finished_records_until_a_document_changes(store, settings):
    train(store, settings, "kept")
    score(store, "kept")
    runs = RunLog(store)
    first = runs.list()
    assert [r["status"] for r in first] == ["succeeded"]
    assert "kept" in runs._finished  # a finished record is kept...
    assert runs.list() == first  # ...and gives the same answer
    # a rewritten document changes its ETag: the record is read again (and found corrupt)
    store.s3.put_object(Bucket=store.data_bucket, Key="runs/kept/metrics.json", Body=b"{junk")
    assert runs.list()[0]["status"] == "corrupt"
    assert runs.record("kept")["status"] == "corrupt"


def _gets(store: ArtifactStore) -> list[str]:
    """The keys of the GETs ``store`` sends from now on (appended as they go)."""
    sent: list[str] = []

    def note(request, **_) -> None:
        if request.method == "GET":
            sent.append(request.url.split("?")[0].rsplit("/", 1)[-1])

    store.s3.meta.events.register("before-send.s3", note)
    return sent


def test_a_record_takes_the_documents_a_promotion_just_read(store, settings):
    train(store, settings, "promoted")
    score(store, "promoted")
    runs = RunLog(store)
    runs.promote("promoted")  # reads the manifest and the metrics
    gets = _gets(store)
    record = runs.record("promoted")
    assert record["status"] == "succeeded"
    assert record["metrics"]["n_train"] > 0
    assert "manifest.json" not in gets
    assert "metrics.json" not in gets
    assert "request.json" in gets  # not read by the promotion


def test_a_document_rewritten_after_it_was_read_is_read_again(store, settings):
    train(store, settings, "rewritten")
    score(store, "rewritten")
    runs = RunLog(store)
    runs.promote("rewritten")
    key = "runs/rewritten/metrics.json"
    metrics = json.loads(store.s3.get_object(Bucket=store.data_bucket, Key=key)["Body"].read())
    store.s3.put_object(
        Bucket=store.data_bucket, Key=key, Body=json.dumps({**metrics, "r2": 0.125}).encode()
    )
    gets = _gets(store)
    assert runs.record("rewritten")["metrics"]["r2"] == 0.125  # the stored value, not the one read
    assert "metrics.json" in gets


def test_the_predictions_are_not_kept_in_memory(store, settings):
    train(store, settings, "large")
    score(store, "large")
    runs = RunLog(store)
    runs.predictions("large")
    runs.record("large")
    assert runs._read  # the record's documents are kept...
    assert not any(key.endswith("predictions.json") for key in runs._read)  # ...not these
