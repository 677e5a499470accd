"""The dashboard's numbers for people (``pages.human``), the rules that use them, error pages."""

from __future__ import annotations

import math

import pytest

from local_ml_flow.api import pages
from local_ml_flow.ml import dataset


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1609023.4, "1,609,023"),
        (-1094445.0, "-1,094,445"),
        (0.66503, "0.665"),
        (0.2, "0.2"),
        (243.456, "243.5"),
        (0.0001234, "0.0001234"),
        (0.0000123, "1.23\u00d710\u207b\u2075"),
        (1e15, "1\u00d710\u00b9\u2075"),
        (0.0, "0"),
        (545, "545"),
        (10**9, "1,000,000,000"),
        (None, "\u2013"),
        (math.nan, "\u2013"),
        ("seed", "seed"),
        (True, "True"),
    ],
)
def test_numbers_for_people(value, shown):
    assert pages.human(value) == shown


def test_a_rule_reads_without_exponents():
    assert pages.describe(dataset.NUMBER_RULES["area"]) == "a whole number from 0 to 1,000,000,000"
    assert "e+" not in pages.predict_page({}, None)


def test_an_error_page_escapes_and_leads_back():
    page = pages.error_page(404, "NotFoundError", "run '<b>' does not exist")
    assert "&lt;b&gt;" in page
    assert "<b>" not in page
    assert '<a href="/ui">' in page
