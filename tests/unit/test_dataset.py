"""Dataset validation (one test per problem kind), cleaning and feature sets."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from local_ml_flow.errors import DatasetTooLargeError, DatasetValidationError
from local_ml_flow.ml import dataset

HEADER = ",".join(dataset.COLUMNS)
ROW = "13300000,7420,4,2,3,yes,no,no,no,yes,2,yes,furnished"
ROW2 = "12250000,8960,4,4,4,yes,no,no,no,yes,3,no,semi-furnished"
BIG = 10**9


def csv(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def problems_of(data: bytes, **limits: int) -> list[str]:
    with pytest.raises(DatasetValidationError) as info:
        dataset.load_dataset(
            data,
            max_bytes=limits.get("max_bytes", BIG),
            max_rows=limits.get("max_rows", BIG),
        )
    return info.value.problems


def test_reference_file_is_valid(dataset_bytes):
    frame = dataset.load_dataset(dataset_bytes, max_bytes=BIG, max_rows=BIG)
    assert len(frame) == 545
    values = frame[list(dataset.YES_NO_COLUMNS)].to_numpy()
    assert set(values.ravel().tolist()) == {0, 1}


def test_missing_columns_are_named():
    header = HEADER.replace(",parking", "").replace("price,", "")
    row = "7420,4,2,3,yes,no,no,no,yes,yes,furnished"
    [problem] = problems_of(csv(row, header=header))
    assert problem == "missing columns: price, parking"


def test_unknown_columns_are_named():
    problems = problems_of(csv(ROW + ",x", header=HEADER + ",colour"))
    assert problems == ["unknown columns: colour"]


def test_empty_file():
    assert problems_of(b"") == ["dataset is empty"]
    assert problems_of(b"  \n\n") == ["dataset is empty"]


def test_header_only():
    assert problems_of(csv()) == ["dataset has a header but no data rows"]


def test_non_utf8_bytes_give_the_line():
    data = csv(ROW, ROW2.replace("semi-furnished", "semi-furn\xe9shed")).replace(
        "é".encode(), b"\xe9"
    )
    assert problems_of(data) == ["dataset is not valid UTF-8: byte 0xe9 at line 3"]


def test_non_numeric_values_name_column_and_lines():
    bad = ROW.replace("7420", "big")
    problems = problems_of(csv(ROW, bad, ROW2, bad))
    assert problems == ["column 'area': non-numeric values at lines 3, 5"]


def test_negative_numbers():
    problems = problems_of(csv(ROW.replace(",2,yes,furnished", ",-1,yes,furnished")))
    assert problems == ["column 'parking': negative values at line 2"]


def test_empty_cells():
    problems = problems_of(csv(ROW.replace(",4,2,", ",,2,")))
    assert problems == ["column 'bedrooms': empty cells at line 2"]


def test_yes_no_other_values():
    problems = problems_of(csv(ROW.replace("yes,no,no,no", "maybe,no,no,no")))
    assert problems == ["column 'mainroad': expected yes or no at line 2 (found 'maybe')"]


def test_yes_no_accepts_any_case_and_spaces():
    frame = dataset.load_dataset(
        csv(ROW.replace("yes,no,no,no", " YES ,No,nO , no")), max_bytes=BIG, max_rows=BIG
    )
    assert frame.loc[0, "mainroad"] == 1
    assert frame.loc[0, "guestroom"] == 0


def test_unknown_furnishing_status():
    problems = problems_of(csv(ROW.replace("furnished", "luxurious")))
    assert len(problems) == 1
    assert problems[0].startswith(
        "column 'furnishingstatus': unknown furnishing status at line 2 (found 'luxurious'"
    )


def test_too_many_bytes():
    data = csv(ROW, ROW2)
    with pytest.raises(DatasetTooLargeError, match=f"{len(data)} bytes, above the limit of 10"):
        dataset.load_dataset(data, max_bytes=10, max_rows=BIG)


def test_too_many_rows():
    with pytest.raises(DatasetTooLargeError, match="3 rows, above the limit of 2 rows"):
        dataset.load_dataset(csv(ROW, ROW2, ROW), max_bytes=BIG, max_rows=2)


def test_every_problem_is_reported_at_once():
    bad = ROW.replace("13300000", "").replace("furnished", "??").replace(",3,yes", ",x,yes")
    problems = problems_of(csv(bad))
    assert len(problems) == 3
    assert any("'price': empty cells" in p for p in problems)
    assert any("'stories': non-numeric" in p for p in problems)
    assert any("'furnishingstatus'" in p for p in problems)


def test_many_bad_lines_are_summarised():
    bad = ROW.replace("7420", "x")
    [problem] = problems_of(csv(*[bad] * 8))
    assert problem == "column 'area': non-numeric values at lines 2, 3, 4, 5, 6 (+3 more)"


def test_malformed_csv_extra_fields_on_first_line():
    [problem] = problems_of(csv(ROW + ",extra,fields", ROW2))
    assert problem == "malformed CSV: line 2 has more fields than the header's 13"


def test_malformed_csv_extra_fields_later():
    [problem] = problems_of(csv(ROW, ROW2 + ",extra"))
    assert problem == "malformed CSV: line 3 has 14 fields, more than the header's 13"
    quoted = ROW.replace("furnished", '"furnished\nwith notes"')
    [problem] = problems_of(csv(quoted, "", ROW2, ROW2 + ",extra"))
    assert problem == "malformed CSV: line 6 has 14 fields, more than the header's 13"


def test_cleaning_turns_yes_no_into_1_0_and_parses_numbers():
    frame = dataset.load_dataset(csv(ROW, ROW2), max_bytes=BIG, max_rows=BIG)
    assert frame["mainroad"].tolist() == [1, 1]
    assert frame["prefarea"].tolist() == [1, 0]
    assert frame["price"].tolist() == [13300000, 12250000]
    assert frame["furnishingstatus"].tolist() == ["furnished", "semi-furnished"]


def test_feature_sets():
    frame = dataset.load_dataset(csv(ROW, ROW2), max_bytes=BIG, max_rows=BIG)
    seed = dataset.features(frame, "seed")
    assert list(seed.columns) == list(dataset.YES_NO_COLUMNS)
    full = dataset.features(frame, "all")
    assert len(full.columns) == 13
    assert full["furnishing_semi-furnished"].tolist() == [0.0, 1.0]
    assert full["furnishing_unfurnished"].tolist() == [0.0, 0.0]
    assert "price" not in full.columns
    with pytest.raises(ValueError, match="unknown feature_set 'some'"):
        dataset.features(frame, "some")


def test_encode_houses_matches_the_training_encoding(dataset_bytes):
    clean = dataset.load_dataset(dataset_bytes, max_bytes=BIG, max_rows=BIG)
    raw = pd.read_csv(io.BytesIO(dataset_bytes)).drop(columns=["price"])
    houses = [
        {str(k): v.item() if hasattr(v, "item") else v for k, v in r.items()}
        for r in raw.head(40).to_dict("records")
    ]
    houses[0] = {**houses[0], "mainroad": " YES ", "furnishingstatus": "Unfurnished"}
    for feature_set in ("all", "seed"):
        expected = dataset.features(clean.head(40), feature_set)
        expected.loc[0, "mainroad"] = 1.0
        if feature_set == "all":
            expected.loc[0, ["furnishing_semi-furnished", "furnishing_unfurnished"]] = [0.0, 1.0]
        encoded = dataset.encode_houses(houses, feature_set)
        assert encoded.tolist() == expected.to_numpy().tolist()


def test_encode_houses_names_bad_values():
    house: dict[str, object] = dict(zip(dataset.COLUMNS[1:], ROW.split(",")[1:], strict=True))
    house = {k: int(str(v)) if k in dataset.NUMBER_RULES else v for k, v in house.items()}
    bad = {"bedrooms": -1, "prefarea": "maybe", "area": "7420", "parking": True, "stories": 2.5}
    with pytest.raises(DatasetValidationError) as info:
        dataset.encode_houses([house, {**house, **bad}], "all")
    assert info.value.problems == [
        "house 1: area must be a whole number from 0 to 1e+09",
        "house 1: bedrooms must be a whole number from 0 to 1000",
        "house 1: stories must be a whole number from 0 to 1000",
        "house 1: parking must be a whole number from 0 to 1000",
        "house 1: prefarea must be yes or no",
    ]
    with pytest.raises(DatasetValidationError, match="no houses"):
        dataset.encode_houses([], "all")


def test_integer_columns_refuse_fractions_and_accept_whole_floats():
    problems = problems_of(csv(ROW.replace(",4,2,3,", ",2.5,2,3,"), ROW2))
    assert problems == ["column 'bedrooms': expected whole numbers at line 2 (found '2.5')"]
    frame = dataset.load_dataset(
        csv(ROW.replace(",4,2,3,", ",4.0,2,3,"), ROW2), max_bytes=BIG, max_rows=BIG
    )
    assert frame["bedrooms"].tolist() == [4, 4]


def test_numbers_above_their_bound():
    problems = problems_of(csv(ROW.replace("7420", "1e300"), ROW2))
    assert problems == ["column 'area': values above 1e+09 at line 2"]


def test_csv_and_json_share_one_rule():
    rule = dataset.NUMBER_RULES["bedrooms"]
    assert rule.integer
    for ok in (0, 4, 4.0, 1000):
        assert dataset.number_problem(ok, rule) is None
    for bad in (2.5, -1, 1001, True, False, "4", None, float("nan"), float("inf")):
        assert dataset.number_problem(bad, rule) == "must be a whole number from 0 to 1000"
    assert all(dataset.NUMBER_RULES[c].integer for c in dataset.NUMERIC_FEATURES)


def test_duplicated_column_is_reported_as_duplicated():
    problems = problems_of(csv(ROW + ",1", header=HEADER + ",area"))
    assert problems == ["duplicated columns: area"]


def test_wide_header_is_refused_fast():
    """A 100,000-column 1 MB header: refused from the raw header, names summarised."""
    header = HEADER + "," + ",".join(f"c{i}" for i in range(100_000))
    assert len(header) > 500_000
    [problem] = problems_of(csv(ROW, header=header))
    assert problem == "unknown columns: " + ", ".join(f"c{i}" for i in range(10)) + " (+99990 more)"
    dupes = ",".join(["area"] * 20_000)
    problems = problems_of(csv(ROW, header=HEADER + "," + dupes))
    assert problems == ["duplicated columns: area"]


def test_line_numbers_are_physical_lines():
    """A quoted cell with line breaks and a blank line shift the physical lines."""
    quoted = ROW.replace("furnished", '"furnished\nwith\nnotes"')
    bad = ROW.replace("7420", "big")
    data = csv(ROW, "", bad, ROW2).replace(ROW2.encode(), ROW2.encode() + b"\n" + bad.encode())
    assert problems_of(data) == ["column 'area': non-numeric values at lines 4, 6"]
    problems = problems_of(csv(quoted, bad))
    assert "column 'area': non-numeric values at line 5" in problems
