"""Registered datasets: register and version a CSV, train on it, read its runs, predict."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/datasets", tags=["datasets"])
