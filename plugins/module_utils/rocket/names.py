"""AC identifiers and names, labels, image hashes and image references (appc spec/types.md).

This module sits at the bottom of the manifest checks: besides the appc scalar types it holds the few
JSON-field primitives (`expect_*`, `child`, `item`, `show`) that isolators.py and manifest.py share, so
that every rejection names the JSON path of the offending value in the same way.
"""

from __future__ import annotations

import json

from .errors import ManifestError, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any

# The patterns of spec/types.md are checked by hand (is_ac_identifier, is_ac_name): every pod start
# checks names, and compiling the regular expressions cost more than all its checks (bench/start.py).
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
LOWER_HEX = frozenset("0123456789abcdef")
IMAGE_ID_PREFIX = "sha512-"
IMAGE_ID_LENGTH = len(IMAGE_ID_PREFIX) + 128

VALID_OS_ARCH: dict[str, frozenset[str]] = {
    "linux": frozenset(
        {"amd64", "i386", "aarch64", "aarch64_be", "armv6l", "armv7l", "armv7b", "ppc64", "ppc64le", "s390x"}
    ),
    "freebsd": frozenset({"amd64", "i386", "arm"}),
    "darwin": frozenset({"x86_64", "i386"}),
}

_SHOW_LIMIT = 60


# --- JSON-field primitives shared by the manifest checks -------------------------------------------


def show(value: object) -> str:
    """Render a JSON value for an error message, shortened to a readable length."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        # Not JSON, too deeply nested, or an integer too long to print: name its type instead.
        text = f"<{type(value).__name__}>"
    if len(text) > _SHOW_LIMIT:
        text = text[: _SHOW_LIMIT - 3] + "..."
    return text


def child(field: str, key: str) -> str:
    """JSON path of member `key` of the object at `field` (`app` + `user` -> `app.user`)."""
    return f"{field}.{key}" if field else key


def item(field: str, index: int) -> str:
    """JSON path of element `index` of the list at `field` (`labels` + 0 -> `labels[0]`)."""
    return f"{field}[{index}]"


def _type_error(value: object, field: str, wanted: str) -> ManifestError:
    return ManifestError(f"{field or 'manifest'} must be {wanted}, not {show(value)}", field=field, rule="type")


def expect_object(value: object, *, field: str) -> dict[str, Any]:
    """Return `value` if it is a JSON object, else raise ManifestError naming `field`."""
    if not isinstance(value, dict):
        raise _type_error(value, field, "an object")
    return value


def expect_list(value: object, *, field: str) -> list[Any]:
    """Return `value` as a list; JSON null counts as an empty list (Go's encoder writes nil lists so)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _type_error(value, field, "a list")
    return value


def expect_string(value: object, *, field: str, non_empty: bool = False) -> str:
    """Return `value` if it is a string (non-empty if asked), else raise ManifestError naming `field`."""
    if not isinstance(value, str):
        raise _type_error(value, field, "a string")
    if non_empty and not value:
        raise ManifestError(f"{field} must not be empty", field=field, rule="required")
    return value


def expect_int(value: object, *, field: str, low: int | None = None, high: int | None = None) -> int:
    """Return `value` if it is a JSON integer within [low, high], else raise ManifestError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(value, field, "an integer")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{'' if low is None else low}..{'' if high is None else high}"
        raise ManifestError(f"{field} must be in {bounds}, not {show(value)}", field=field, rule="range")
    return value


def expect_bool(value: object, *, field: str) -> bool:
    """Return `value` if it is a JSON boolean, else raise ManifestError naming `field`."""
    if not isinstance(value, bool):
        raise _type_error(value, field, "a boolean")
    return value


def require(obj: dict[str, Any], key: str, *, field: str) -> Any:
    """Return member `key` of `obj` (at `field`); raise ManifestError if it is absent or null."""
    value = obj.get(key)
    if value is None:
        where = child(field, key)
        raise ManifestError(f"{where} is required", field=where, rule="required")
    return value


# --- AC Identifier, AC Name ------------------------------------------------------------------------


def _words_joined(text: str, separators: str) -> bool:
    """Whether `text` is runs of [a-z0-9] joined by single characters of `separators`."""
    after_separator = True  # also at the start: a separator may neither lead nor follow another
    for char in text:
        if char in _LOWER_ALNUM:
            after_separator = False
        elif after_separator or char not in separators:
            return False
        else:
            after_separator = True
    return not after_separator  # nor end the text; an empty text is no name either


def is_ac_identifier(text: str) -> bool:
    """spec/types.md's AC Identifier, `^[a-z0-9]+([-._~/][a-z0-9]+)*$` (`example.com/app`)."""
    return _words_joined(text, "-._~/")


def is_ac_name(text: str) -> bool:
    """spec/types.md's AC Name, `^[a-z0-9]+([-][a-z0-9]+)*$` (`my-app`)."""
    return _words_joined(text, "-")


def check_ac_identifier(value: object, *, field: str) -> str:
    """Return `value` if it is an AC Identifier (`example.com/app`), else raise ManifestError."""
    text = expect_string(value, field=field)
    if not is_ac_identifier(text):
        raise ManifestError(
            f"{field} must be an AC Identifier (lower-case letters and digits, separated by one of -._~/), "
            f"not {show(text)}",
            field=field,
            rule="ac-identifier",
        )
    return text


def check_ac_name(value: object, *, field: str) -> str:
    """Return `value` if it is an AC Name (`my-app`), else raise ManifestError."""
    text = expect_string(value, field=field)
    if not is_ac_name(text):
        raise ManifestError(
            f"{field} must be an AC Name (lower-case letters and digits, separated by single dashes), not {show(text)}",
            field=field,
            rule="ac-name",
        )
    return text


# --- Labels ----------------------------------------------------------------------------------------


def os_arch_problem(labels: dict[str, str]) -> tuple[str, str] | None:
    """Return (label name, reason) if the os/arch labels are not a valid pair, else None."""
    os_name = labels.get("os")
    arch = labels.get("arch")
    if os_name is None:
        # The Go reference ignores a lone arch; the spec text (and rocket) say arch needs os.
        return None if arch is None else ("arch", f"label arch={arch!r} needs an os label")
    if os_name not in VALID_OS_ARCH:
        # The reference rejects an unknown os even without arch: there is nothing to run it on.
        return "os", f"bad os {os_name!r} (must be one of: {', '.join(sorted(VALID_OS_ARCH))})"
    if arch is not None and arch not in VALID_OS_ARCH[os_name]:
        archs = ", ".join(sorted(VALID_OS_ARCH[os_name]))
        return "arch", f"bad arch {arch!r} for os {os_name} (must be one of: {archs})"
    return None


def check_labels(value: object, *, field: str) -> dict[str, str]:
    """Return labels (`[{name, value}]`, null = none) as a dict; raise ManifestError if one is invalid."""
    labels: dict[str, str] = {}
    positions: dict[str, int] = {}
    for index, entry in enumerate(expect_list(value, field=field)):
        at = item(field, index)
        entry = expect_object(entry, field=at)
        name = check_ac_identifier(require(entry, "name", field=at), field=child(at, "name"))
        if name == "name":
            raise ManifestError(
                f'{child(at, "name")}: a label cannot be called "name" (the image name is not a label)',
                field=child(at, "name"),
                rule="label-name",
            )
        if name in labels:
            raise ManifestError(
                f"{child(at, 'name')}: duplicate label {name!r} (first at {item(field, positions[name])})",
                field=child(at, "name"),
                rule="unique",
            )
        labels[name] = expect_string(require(entry, "value", field=at), field=child(at, "value"))
        positions[name] = index
    problem = os_arch_problem(labels)
    if problem is not None:
        label, reason = problem
        bad = child(item(field, positions[label]), "value")
        raise ManifestError(f"{bad}: {reason}", field=bad, rule="os-arch")
    return labels


# --- Image IDs -------------------------------------------------------------------------------------


def check_hash(value: object, *, field: str) -> str:
    """Return `value` if it is an image hash `sha512-<value>`, else raise ManifestError."""
    # Like the Go reference, any non-empty value without a dash is accepted after `sha512-` (the spec's
    # own example says `sha512-...`); a store resolves it as a prefix. is_full_image_id() tells them apart.
    text = expect_string(value, field=field)
    kind, dash, digest = text.partition("-")
    if not dash or kind != "sha512" or not digest or "-" in digest:
        raise ManifestError(
            f"{field} must be an image ID of the form sha512-<hex digest>, not {show(text)}",
            field=field,
            rule="hash",
        )
    return text


def is_full_image_id(s: str) -> bool:
    """True if `s` is a complete image ID: `sha512-` and 128 lower-case hex digits."""
    prefix, digest = s[: len(IMAGE_ID_PREFIX)], s[len(IMAGE_ID_PREFIX) :]
    return len(s) == IMAGE_ID_LENGTH and prefix == IMAGE_ID_PREFIX and LOWER_HEX.issuperset(digest)


# --- Image references on the command line ----------------------------------------------------------


def app_name_from_image(image_name: str) -> str:
    """Default app name for an image: its last path component made into an AC Name."""
    last = image_name.rstrip("/").rsplit("/", 1)[-1]
    # Every run of other characters becomes one dash.
    name = "-".join("".join(c if c in _LOWER_ALNUM else " " for c in last.lower()).split())
    if not name:
        raise UsageError(
            f"cannot make an app name from image name {image_name!r}",
            hint="give the app a name with --name",
            image=image_name,
        )
    return name


def parse_image_reference(text: str) -> tuple[str, dict[str, str]]:
    """Split `name[:version][,label=value...]` into the image name and its labels."""
    hint = "write NAME[:VERSION][,LABEL=VALUE...], e.g. example.com/app:1.0,os=linux"
    if not text:
        raise UsageError("empty image reference", hint=hint)
    head, *pairs = text.split(",")
    name, colon, version = head.partition(":")
    if not is_ac_identifier(name):
        raise UsageError(f"image name {name!r} in {text!r} is not an AC Identifier", hint=hint, reference=text)
    labels: dict[str, str] = {}
    if colon:
        if not version or ":" in version:
            raise UsageError(f"bad version {version!r} in image reference {text!r}", hint=hint, reference=text)
        labels["version"] = version
    for pair in pairs:
        key, equals, val = pair.partition("=")
        if not equals or not val:
            raise UsageError(f"label {pair!r} in {text!r} is not LABEL=VALUE", hint=hint, reference=text)
        if not is_ac_identifier(key) or key == "name":
            raise UsageError(f"bad label name {key!r} in image reference {text!r}", hint=hint, reference=text)
        if key in labels:
            raise UsageError(f"label {key!r} given twice in image reference {text!r}", hint=hint, reference=text)
        labels[key] = val
    problem = os_arch_problem(labels)
    if problem is not None:
        raise UsageError(f"image reference {text!r}: {problem[1]}", hint=hint, reference=text)
    return name, labels
