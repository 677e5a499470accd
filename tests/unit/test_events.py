"""Ids and names in events are matched whole: a trailing newline is not a valid id."""

from __future__ import annotations

import pytest

from local_ml_flow.errors import InvalidRequestError
from local_ml_flow.events import EvaluateEvent, IngestEvent, parse_event


@pytest.mark.parametrize(
    "event",
    [
        {"run_id": "evil\n"},
        {"run_id": "evil\nFORGED"},
        {"run_id": "a/b"},
        {"run_id": "a..b"},
        {"dataset": "iris\n"},
        {"dataset": "Iris"},
        {"dataset": ""},
        {"test_size": float("nan")},
    ],
)
def test_ids_and_names_are_matched_whole(event):
    for kind in (IngestEvent, EvaluateEvent):
        if set(event) <= set(kind.model_fields):
            with pytest.raises(InvalidRequestError):
                parse_event(kind, event)


def test_good_ids_and_names_pass():
    event = parse_event(IngestEvent, {"run_id": "20260101T120000Z-3f2a9c1b", "dataset": "my_set-2"})
    assert (event.run_id, event.dataset) == ("20260101T120000Z-3f2a9c1b", "my_set-2")
