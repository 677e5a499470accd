"""The dashboard's pages of registered datasets: list, one dataset, its runs, a run, compare,
predict."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from local_ml_flow.api import dataset_ui
from local_ml_flow.events import HOUSING, valid_dataset_name, valid_run_id

router = APIRouter(prefix="/ui/datasets", include_in_schema=False)


def _not_found(what: str) -> HTMLResponse:
    return HTMLResponse(dataset_ui.not_found_page(what), status_code=404)


def _unknown_name(name: str) -> HTMLResponse:
    return _not_found(f"no dataset can be named {name[:80]!r}: use 1-64 of a-z, 0-9, _ and -")


@router.get("", response_class=HTMLResponse)
def datasets_page() -> HTMLResponse:
    """Every dataset, and the form that registers one."""
    return HTMLResponse(dataset_ui.list_page())


@router.get("/")
def datasets_page_slash() -> RedirectResponse:
    return RedirectResponse("/ui/datasets", status_code=307)


@router.get("/{name}", response_class=HTMLResponse)
def dataset_page(name: str) -> Response:
    """One dataset: schema, runs, start a run, versions (the built-in one has its own pages)."""
    if name == HOUSING:
        return RedirectResponse("/ui", status_code=307)
    if not valid_dataset_name(name):
        return _unknown_name(name)
    return HTMLResponse(dataset_ui.dataset_page(name))


@router.get("/{name}/runs/{run_id}", response_class=HTMLResponse)
def run_page(name: str, run_id: str) -> Response:
    """One run of a dataset: parameters, metrics, charts, make current."""
    if not valid_dataset_name(name):
        return _unknown_name(name)
    if not valid_run_id(run_id):
        return _not_found(f"no run can be named {run_id[:120]!r}")
    if name == HOUSING:
        return RedirectResponse(f"/ui/runs/{run_id}", status_code=307)
    return HTMLResponse(dataset_ui.run_page(name, run_id))


@router.get("/{name}/compare", response_class=HTMLResponse)
def compare_page(
    name: str, request: Request, run: Annotated[list[str] | None, Query()] = None
) -> Response:
    """2-4 runs of a dataset side by side (``?run=A&run=B``): parameters and test metrics."""
    if not valid_dataset_name(name):
        return _unknown_name(name)
    if name == HOUSING:
        query = request.url.query
        return RedirectResponse("/ui/compare" + (f"?{query}" if query else ""), status_code=307)
    chosen = list(dict.fromkeys(run or []))
    for run_id in chosen:
        if not valid_run_id(run_id):
            return _not_found(f"no run can be named {run_id[:120]!r}")
    if not 2 <= len(chosen) <= 4:
        return HTMLResponse(
            dataset_ui.bad_request_page(name, f"choose 2 to 4 runs to compare, not {len(chosen)}"),
            status_code=400,
        )
    return HTMLResponse(dataset_ui.compare_page(name, chosen))


@router.get("/{name}/predict", response_class=HTMLResponse)
def predict_page(name: str) -> Response:
    """A prediction form built from the dataset's schema."""
    if name == HOUSING:
        return RedirectResponse("/ui/predict", status_code=307)
    if not valid_dataset_name(name):
        return _unknown_name(name)
    return HTMLResponse(dataset_ui.predict_page(name))
