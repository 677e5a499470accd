"""The original student project's two Lambda handlers, re-implemented minimally for timing.

Used only by ``benchmarks/versus_original.py`` (never imported by ``src/``). It does what
github.com/MathieuAudibert/local-ml-flow's ``src/core/lambdas/ingestion.py`` and
``inference.py`` do, request for request:

- ingestion: GET ``housing.csv`` from the data bucket; the six yes/no columns as 1/0 (the
  original's ``clean_df``); an 80/20 split (``random_state`` 42) of those columns and
  ``price``; ``StandardScaler`` fitted on the training rows; ``LinearRegression``; then,
  one after the other, PUT ``model.joblib`` (models bucket), ``x_test.joblib`` and
  ``y_test.joblib`` (data bucket), each ``joblib.dump``-ed to a buffer;
- inference: GET ``model.joblib``, ``x_test.joblib``, ``y_test.joblib`` one after the
  other, ``joblib.load`` each (a pickle: fine here, the benchmark wrote them itself),
  predict, R², PUT ``score.txt`` as ``str(r2 * 100) + "%"``.

Both answer ``{"statusCode": 200, "body": "success"}`` (and 500 with the message on an error)
as the original does. Differences, all in the original's favour or neutral: the buckets are
parameters (each benchmark process has its own pair on a shared emulator), there is no
logging, and the S3 client is passed in. ``per_call_clients=True`` creates the clients as the
original does (its ``config()`` builds an S3 and a Lambda client on each call: twice per
ingestion, since ``save_model`` calls it again, once per inference).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import joblib
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

SEED_COLUMNS = [
    "mainroad",
    "guestroom",
    "basement",
    "hotwaterheating",
    "airconditioning",
    "prefarea",
]


@dataclass
class Original:
    """The original's handlers over ``s3`` (a boto3 S3 client), or over a new client per
    call made by ``new_client`` (the original's ``config()``)."""

    s3: Any
    data_bucket: str
    models_bucket: str
    new_client: Callable[[], Any] | None = None

    def _client(self) -> Any:
        if self.new_client is None:
            return self.s3
        self.new_client()  # config() also builds a Lambda client, unused by the handlers
        return self.new_client()

    def ingestion(self, event: Any, context: Any = None) -> dict[str, Any]:
        try:
            self._ingest()
        except Exception as exc:
            return {"statusCode": 500, "body": str(exc)}
        return {"statusCode": 200, "body": "success"}

    def inference(self, event: Any, context: Any = None) -> dict[str, Any]:
        try:
            self._infer()
        except Exception as exc:
            return {"statusCode": 500, "body": str(exc)}
        return {"statusCode": 200, "body": "success"}

    def _ingest(self) -> None:
        s3 = self._client()
        response = s3.get_object(Bucket=self.data_bucket, Key="housing.csv")
        housing = _clean(pd.read_csv(response["Body"]))
        x = pd.DataFrame(housing, columns=SEED_COLUMNS)
        x_train, x_test, y_train, y_test = train_test_split(
            x, housing.price, test_size=0.2, random_state=42
        )
        scaler = StandardScaler()
        x_train_scaled = scaler.fit_transform(x_train)
        x_test_scaled = scaler.transform(x_test)
        model = LinearRegression()
        model.fit(x_train_scaled, y_train)
        # save_model() makes its own clients (config()) before its PUT
        self._client().put_object(Bucket=self.models_bucket, Key="model.joblib", Body=_dump(model))
        s3.put_object(Bucket=self.data_bucket, Key="x_test.joblib", Body=_dump(x_test_scaled))
        s3.put_object(Bucket=self.data_bucket, Key="y_test.joblib", Body=_dump(y_test))

    def _infer(self) -> None:
        s3 = self._client()
        model = _load(s3.get_object(Bucket=self.models_bucket, Key="model.joblib"))
        x_response = s3.get_object(Bucket=self.data_bucket, Key="x_test.joblib")
        y_response = s3.get_object(Bucket=self.data_bucket, Key="y_test.joblib")
        x_test, y_test = _load(x_response), _load(y_response)
        score = str(r2_score(y_test, model.predict(x_test)) * 100) + "%"
        s3.put_object(Bucket=self.data_bucket, Key="score.txt", Body=score)


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    """The original's ``clean_df``: yes/no as the strings "1"/"0" in the six columns."""
    clean = frame.copy()
    for column in SEED_COLUMNS:
        clean.loc[clean[column] == "yes", column] = "1"
        clean.loc[clean[column] == "no", column] = "0"
    return clean


def _dump(value: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    return buffer.getvalue()


def _load(response: Any) -> Any:
    return joblib.load(io.BytesIO(response["Body"].read()))  # the benchmark wrote it
