"""Typed errors of local-ml-flow. Every name ends in ``Error``."""

from __future__ import annotations

from typing import Any


class LocalMlFlowError(Exception):
    """Base class: carries a message and optional structured details."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class DatasetValidationError(LocalMlFlowError):
    """The dataset breaks the housing schema; ``problems`` lists every finding."""

    def __init__(self, problems: list[str]) -> None:
        shown = "; ".join(problems[:10])
        more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"invalid dataset: {shown}{more}", details=problems)
        self.problems = problems


class DatasetTooLargeError(DatasetValidationError):
    """The dataset exceeds the configured byte or row limit."""


class UploadTooLargeError(LocalMlFlowError):
    """An uploaded file exceeds the upload limit."""


class InvalidRequestError(LocalMlFlowError):
    """An event or request carries a bad parameter."""


class ConfigurationError(LocalMlFlowError):
    """The server is not set up to do this (a function not deployed, no AWS credentials)."""


class MissingCredentialsError(ConfigurationError):
    """No AWS credentials are configured for the AWS side."""


class NotFoundError(LocalMlFlowError):
    """A bucket, key, run or function does not exist."""


class BucketNotFoundError(NotFoundError):
    """An S3 bucket does not exist (a deployment problem, not a missing artifact)."""


class KeyNotFoundError(NotFoundError):
    """An S3 object does not exist in an existing bucket."""


class RunNotFoundError(NotFoundError):
    """No run has this id."""


class FunctionNotFoundError(NotFoundError, ConfigurationError):
    """A Lambda function does not exist: deploy it, or name the right one in the settings."""


class AlreadyExistsError(LocalMlFlowError):
    """An object written once already exists (a run id reused, for instance)."""


class NoModelError(NotFoundError):
    """No successful training run exists yet: train first."""


class IntegrityError(LocalMlFlowError):
    """Stored bytes do not match the sha256 recorded for them, or hold what we never load
    (a type outside the trusted list, a pickle)."""


class CorruptStateError(LocalMlFlowError):
    """A stored document is not what this project writes (invalid JSON, wrong shape)."""


class ModelVersionError(LocalMlFlowError):
    """A stored model was made by another scikit-learn minor version: retrain it."""


class NonFiniteMetricsError(LocalMlFlowError):
    """A model's metrics are NaN or infinite (for instance, numbers too large for the
    arithmetic): the run fails and is never promoted."""


class PromotionRefusedError(LocalMlFlowError):
    """A run may not become current (failed, not finite, or below LMF_MIN_R2)."""


class RunInUseError(LocalMlFlowError):
    """A run that cannot be deleted now: it is current, in flight or pinned."""


class ConcurrentUpdateError(LocalMlFlowError):
    """A compare-and-swap lost against other writers too many times."""


class AwsError(LocalMlFlowError):
    """An AWS service (S3, Lambda) failed for a reason other than a missing resource."""


class StorageError(AwsError):
    """S3 failed for a reason other than a missing bucket or key."""


class StorageFullError(StorageError):
    """S3 could not store a write (a full or failing disk, a read-only state): nothing was
    changed."""


class LambdaServiceError(AwsError):
    """The Lambda API failed (not the function: see FunctionFailedError)."""


class EndpointUnreachableError(StorageError, LambdaServiceError):
    """The AWS endpoint (emulator, LocalStack or AWS) cannot be reached."""


class DatasetFetchError(LocalMlFlowError):
    """Downloading or verifying the reference dataset failed."""


class FunctionFailedError(LocalMlFlowError):
    """A Lambda function raised; same shape whether it ran on AWS or in-process."""

    def __init__(
        self,
        function_name: str,
        error_type: str,
        message: str,
        details: Any = None,
        trace: str = "",
    ) -> None:
        super().__init__(f"{function_name} failed with {error_type}: {message}", details)
        self.function_name = function_name
        self.error_type = error_type
        self.error_message = message
        # The function's traceback, for the server's log only (never in an answer).
        self.trace = trace

    def log_line(self) -> str:
        """The failure in one line, with the function's traceback when it was unexpected
        (one of our refusals says what is wrong in its message; its traceback is noise)."""
        line = f"{self.function_name} failed: {self.error_type}: {self.error_message}"
        if self.trace and not raised_on_purpose(self.error_type):
            return f"{line}\nTraceback (in the function):\n{self.trace}"
        return line


def raised_on_purpose(error_type: str) -> bool:
    """Whether ``error_type`` names one of the errors of this module (raised on purpose, with
    a message that says what is wrong), not an unexpected exception whose traceback matters.
    Only this module's: the answer does not depend on what else has been imported."""
    kind = globals().get(error_type)
    return isinstance(kind, type) and issubclass(kind, LocalMlFlowError)
