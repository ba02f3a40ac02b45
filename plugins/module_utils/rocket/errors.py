"""One error tree for the whole engine.

    RocketError                  anything the engine reports to a user (CLI exit 254, module fail_json)
    ├── UsageError               the request itself is malformed (bad flag value, bad image reference)
    ├── ImageError               an image archive or its content is not acceptable
    │   └── ManifestError        a manifest breaks a rule of the specification (carries the field)
    ├── StoreError               the store cannot do what was asked (not found, ambiguous, busy, corrupt)
    │   └── NotFoundError        no image, render or pod matches the reference
    ├── TrustError               a signature or key does not establish trust
    ├── FetchError               an image or key could not be retrieved
    ├── PodStateError            a pod is not in a state that allows the transition
    └── NetworkError             a pod network cannot be configured, set up or torn down

Every error carries `message` (what failed, on which input), `hint` (what to do next) and keyword
context. Tests check the type and the fields, never the wording. A programming mistake is an
`AssertionError("bug: ...")`, not a RocketError.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any


class RocketError(Exception):
    """An error the engine reports to its user: message, optional hint, and context fields."""

    def __init__(self, message: str, *, hint: str = "", **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.context = context

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(RocketError):
    """The request is malformed: a flag value, an image reference, a file that is not what it says."""


class ImageError(RocketError):
    """An image archive or its content is unacceptable; `entry` names the archive member if any."""

    def __init__(self, message: str, *, entry: str = "", rule: str = "", hint: str = "", **context: Any) -> None:
        super().__init__(message, hint=hint, entry=entry, rule=rule, **context)
        self.entry = entry
        self.rule = rule


class ManifestError(ImageError):
    """A manifest breaks a rule; `field` is the JSON path of the offending value (`app.exec[0]`)."""

    def __init__(self, message: str, *, field: str, rule: str = "", hint: str = "", **context: Any) -> None:
        super().__init__(message, rule=rule, hint=hint, field=field, **context)
        self.field = field


class StoreError(RocketError):
    """The store cannot do what was asked: busy, corrupt, ambiguous reference."""


class NotFoundError(StoreError):
    """No image, rendered tree or pod matches the given reference."""


class TrustError(RocketError):
    """A signature, key or policy does not establish trust in an image."""


class FetchError(RocketError):
    """An image, signature or key could not be retrieved."""


class PodStateError(RocketError):
    """A pod is not in a state that allows the requested transition."""


class NetworkError(RocketError):
    """A network configuration is invalid, or a pod's network could not be set up or torn down."""
