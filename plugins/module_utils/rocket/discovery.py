"""appc image discovery (spec/discovery.md), and the mirror map that replaces it for chosen prefixes.

For `example.com/group/app` rocket asks `https://example.com/group/app?ac-discovery=1`, then
`https://example.com/group?ac-discovery=1`, then `https://example.com?ac-discovery=1`, until a page has
`<meta name="ac-discovery" content="PREFIX TEMPLATE">` (or `ac-discovery-pubkeys` for keys) whose PREFIX
covers the whole name on path components (`example.com/foo` covers `example.com/foo/bar`, never
`example.com/foobar`). Templates are filled with `{name}`, `{ext}` (`aci`, `aci.asc`) and the labels,
where `version` defaults to `latest`, `os` to `linux` and `arch` to this host's; a template with a
variable left unfilled is skipped, and of the rest only the best matching ones (most labels filled,
spec/discovery.md) are kept, in page order. Only https templates count (http ones too with
`insecure_http`): a page on the network must not send rocket to `file://` or elsewhere.

`<local config>/mirrors.json` maps name prefixes to static templates, for private and air-gapped sites:

    {"mirrors": [{"prefix": "example.com/foo", "aci": "https://mirror.test/{name}-{version}.{ext}",
                  "pubkeys": "https://mirror.test/pubkeys.gpg"},
                 {"prefix": "example.com", "aci": "file:///srv/aci/{name}-{version}.{ext}"}]}

The most specific prefix covering a name answers for it, and no discovery page is fetched at all.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote, urlsplit

from .errors import FetchError, UsageError
from .names import is_ac_identifier
from .paths import mirrors_path
from .transport import HttpClient

MAX_PAGE = 1 << 20
MAX_MIRRORS_FILE = 1 << 20
MAX_NOTES = 5  # skipped tags named per page in a not-found error; a hostile page may hold thousands
META_NAMES = frozenset({"ac-discovery", "ac-discovery-pubkeys"})
WANTS = ("images", "keys")
DEFAULT_VERSION = "latest"
DEFAULT_OS = "linux"

# platform.machine() -> the appc arch label (spec/types.md); anything else is passed on as it is.
ARCH_NAMES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "i386",
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "aarch64_be": "aarch64_be",
    "armv6l": "armv6l",
    "armv7l": "armv7l",
    "armv7b": "armv7b",
    "ppc64": "ppc64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}

_VARIABLE_RE = re.compile(r"\{([^{}]*)\}")
_NOT_LABELS = frozenset({"name", "ext"})


@dataclass(frozen=True)
class MetaTag:
    """One discovery meta tag: `name` is ac-discovery or ac-discovery-pubkeys; `url` may be a template."""

    name: str
    prefix: str
    url: str


@dataclass
class Endpoints:
    """Where an image and its signature (`acis`, best first) and the keys of its prefix can be fetched."""

    acis: List[Tuple[str, str]] = field(default_factory=list)
    keys: List[str] = field(default_factory=list)
    source: str = ""


@dataclass(frozen=True)
class Mirror:
    """A mirror map entry: an image template and/or a keys URL that answer for every name under `prefix`."""

    prefix: str
    aci: Optional[str] = None
    pubkeys: Optional[str] = None


@dataclass
class MirrorMap:
    """The mirror map of the local config (empty if it has none)."""

    mirrors: List[Mirror] = field(default_factory=list)
    source: Optional[Path] = None

    def lookup(self, name: str) -> Optional[Mirror]:
        """The mirror with the longest prefix covering `name`, if any."""
        covering = [m for m in self.mirrors if prefix_covers(m.prefix, name)]
        return max(covering, key=lambda m: len(m.prefix)) if covering else None


# --- meta tags ------------------------------------------------------------------------------------


class _MetaParser(HTMLParser):
    """Collects discovery meta tags from the document head; stops at `<body>` like Go's `go get`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: List[MetaTag] = []
        self.done = False

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        if self.done:
            return
        if tag == "body":
            # Page bodies may carry text other people wrote (a wiki, a forum): only the head counts.
            self.done = True
            return
        if tag != "meta":
            return
        values = {key.lower(): (value or "") for key, value in attrs}
        name = values.get("name", "").strip().lower()
        fields = values.get("content", "").split()
        if name in META_NAMES and len(fields) == 2:
            self.tags.append(MetaTag(name, fields[0], fields[1]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.done = True


def parse_meta(html: bytes) -> List[MetaTag]:
    """The ac-discovery and ac-discovery-pubkeys meta tags of a page, in page order."""
    parser = _MetaParser()
    parser.feed(html.decode("utf-8", errors="replace"))
    parser.close()
    return parser.tags


# --- names, labels and templates -------------------------------------------------------------------


def prefix_covers(prefix: str, name: str) -> bool:
    """True if `prefix` equals `name` or is a parent of it on whole path components."""
    prefix = prefix.rstrip("/")
    return bool(prefix) and (name == prefix or name.startswith(prefix + "/"))


def host_arch(machine: Optional[str] = None) -> str:
    """The appc arch label of this host (or of `machine`, a platform.machine() value)."""
    machine = (machine if machine is not None else platform.machine()).lower()
    return ARCH_NAMES.get(machine, machine)


def discovery_labels(labels: Mapping[str, str]) -> Dict[str, str]:
    """`labels` with the defaults discovery fills in: version `latest`, os `linux`, this host's arch."""
    filled = {"version": DEFAULT_VERSION, "os": DEFAULT_OS, "arch": host_arch()}
    filled.update(labels)
    return filled


def check_request(name: str, labels: Mapping[str, str]) -> None:
    """Raise UsageError unless `name` is an AC Identifier and every label can go into a URL."""
    if not is_ac_identifier(name):
        raise UsageError(f"image name {name!r} is not an AC Identifier", hint="e.g. example.com/app", image=name)
    for key, value in labels.items():
        # A value becomes one path component of a URL, maybe of a file:// URL: no way out of it.
        if key in _NOT_LABELS or not is_ac_identifier(key):
            raise UsageError(f"bad label name {key!r} for {name}", hint="label names are AC Identifiers", image=name)
        if not value or "/" in value or value in (".", "..") or not value.isprintable():
            raise UsageError(
                f"label {key}={value!r} cannot be used for discovery",
                hint="a label value must be printable, non-empty, without '/' and not '.' or '..'",
                image=name,
            )


def template_variables(template: str) -> List[str]:
    """The `{variable}` names of a template, in order."""
    return _VARIABLE_RE.findall(template)


def fill_template(template: str, name: str, labels: Mapping[str, str], ext: str) -> Optional[str]:
    """`template` with {name}, {ext} and label variables filled in, or None if one is left unfilled."""
    values = {key: quote(value, safe="+") for key, value in labels.items() if key not in _NOT_LABELS}
    values.update(name=name, ext=ext)
    if any(variable not in values for variable in template_variables(template)):
        return None
    return _VARIABLE_RE.sub(lambda match: values[match.group(1)], template)


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def endpoints_from_tags(
    tags: List[MetaTag], name: str, labels: Mapping[str, str], *, insecure_http: bool = False
) -> Tuple[Endpoints, List[str]]:
    """The endpoints the tags give for `name` (labels already defaulted), and why other tags were skipped."""
    schemes = ("https", "http") if insecure_http else ("https",)
    endpoints = Endpoints()
    notes: List[str] = []
    rendered: List[Tuple[int, str, str]] = []
    for tag in tags:
        if not prefix_covers(tag.prefix, name):
            notes.append(f"{tag.name} for prefix {tag.prefix!r} does not cover {name}")
        elif _scheme(tag.url) not in schemes:
            why = "plain http needs --insecure-options=http" if _scheme(tag.url) == "http" else "unsupported scheme"
            notes.append(f"{tag.name} {tag.url} skipped: {why}")
        elif tag.name == "ac-discovery-pubkeys":
            endpoints.keys.append(tag.url)
        elif "ext" not in template_variables(tag.url):
            notes.append(f"ac-discovery {tag.url} skipped: no {{ext}} in the template")
        else:
            aci = fill_template(tag.url, name, labels, "aci")
            asc = fill_template(tag.url, name, labels, "aci.asc")
            if aci is None or asc is None:
                unfilled = sorted(set(template_variables(tag.url)) - set(labels) - _NOT_LABELS)
                notes.append(f"ac-discovery {tag.url} skipped: no value for {', '.join(unfilled)}")
                continue
            filled = len(set(template_variables(tag.url)) - _NOT_LABELS)
            rendered.append((filled, aci, asc))
    best = max((filled for filled, _aci, _asc in rendered), default=0)
    endpoints.acis = [(aci, asc) for filled, aci, asc in rendered if filled == best]
    return endpoints, notes


# --- the mirror map --------------------------------------------------------------------------------


def _mirror_error(path: Path, where: str, problem: str) -> UsageError:
    return UsageError(
        f"{path}: {where}: {problem}",
        hint='write {"mirrors": [{"prefix": "example.com", "aci": "https://.../{name}-{version}.{ext}"}]}',
        file=str(path),
        field=where,
    )


def _parse_mirror(path: Path, index: int, entry: Any) -> Mirror:
    where = f"mirrors[{index}]"
    if not isinstance(entry, dict):
        raise _mirror_error(path, where, "must be an object")
    extra = sorted(set(entry) - {"prefix", "aci", "pubkeys"})
    if extra:
        raise _mirror_error(path, f"{where}.{extra[0]}", "unknown field (expected prefix, aci, pubkeys)")
    prefix = entry.get("prefix")
    if not isinstance(prefix, str) or not is_ac_identifier(prefix):
        raise _mirror_error(path, f"{where}.prefix", f"{prefix!r} is not an AC Identifier")
    urls: Dict[str, Optional[str]] = {}
    for key in ("aci", "pubkeys"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or _scheme(value) not in ("https", "http", "file")):
            raise _mirror_error(path, f"{where}.{key}", f"{value!r} is not an https, http or file URL")
        urls[key] = value
    if urls["aci"] is None and urls["pubkeys"] is None:
        raise _mirror_error(path, where, "needs aci, pubkeys or both")
    if urls["aci"] is not None and "ext" not in template_variables(urls["aci"]):
        raise _mirror_error(
            path, f"{where}.aci", "the template needs {ext} (aci for the image, aci.asc for its signature)"
        )
    return Mirror(prefix, urls["aci"], urls["pubkeys"])


def load_mirrors(local_config: Path) -> MirrorMap:
    """The mirror map from `<local_config>/mirrors.json`; an empty one if the file does not exist."""
    path = mirrors_path(local_config)
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_MIRRORS_FILE + 1)
    except FileNotFoundError:
        return MirrorMap()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", hint="check its permissions", file=str(path)) from exc
    if len(data) > MAX_MIRRORS_FILE:
        raise _mirror_error(path, "(file)", f"larger than {MAX_MIRRORS_FILE} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _mirror_error(path, "(file)", f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or set(doc) != {"mirrors"} or not isinstance(doc["mirrors"], list):
        raise _mirror_error(path, "mirrors", 'the file must hold {"mirrors": [...]} and nothing else')
    mirrors: List[Mirror] = []
    for index, entry in enumerate(doc["mirrors"]):
        mirror = _parse_mirror(path, index, entry)
        if any(m.prefix == mirror.prefix for m in mirrors):
            raise _mirror_error(path, f"mirrors[{index}].prefix", f"{mirror.prefix!r} is listed twice")
        mirrors.append(mirror)
    return MirrorMap(mirrors, path)


def mirror_endpoints(mirror: Mirror, name: str, labels: Mapping[str, str]) -> Endpoints:
    """The static answer of a mirror for `name` (labels already defaulted)."""
    endpoints = Endpoints(keys=[mirror.pubkeys] if mirror.pubkeys else [], source=f"mirror {mirror.prefix}")
    if mirror.aci is not None:
        aci = fill_template(mirror.aci, name, labels, "aci")
        asc = fill_template(mirror.aci, name, labels, "aci.asc")
        if aci is not None and asc is not None:
            endpoints.acis.append((aci, asc))
    return endpoints


# --- discovery -------------------------------------------------------------------------------------


def discovery_levels(name: str) -> List[str]:
    """`a/b/c` -> [`a/b/c`, `a/b`, `a`]: the names whose pages are asked, in order."""
    components = name.split("/")
    return ["/".join(components[:length]) for length in range(len(components), 0, -1)]


def discovery_url(level: str, scheme: str = "https") -> str:
    """The discovery page URL of one level of a name."""
    return f"{scheme}://{level}?ac-discovery=1"


def _found(endpoints: Endpoints, want: str) -> bool:
    return bool(endpoints.acis if want == "images" else endpoints.keys)


def discover(
    name: str,
    labels: Dict[str, str],
    *,
    client: HttpClient,
    insecure_http: bool = False,
    mirrors: Optional[MirrorMap] = None,
    want: str = "images",
    max_page: int = MAX_PAGE,
) -> Endpoints:
    """Where to fetch `name` (want='images') or its keys (want='keys'); FetchError 'not-found' lists every try."""
    if want not in WANTS:
        raise AssertionError(f"bug: discover(want={want!r})")
    check_request(name, labels)
    filled = discovery_labels(labels)
    mirror = mirrors.lookup(name) if mirrors is not None else None
    if mirror is not None:
        endpoints = mirror_endpoints(mirror, name, filled)
        if _found(endpoints, want):
            return endpoints
        source = mirrors.source if mirrors is not None and mirrors.source else "mirrors.json"
        what = "keys URL (pubkeys)" if want == "keys" else "aci template that can be filled for these labels"
        raise FetchError(
            f"{name}: the mirror for {mirror.prefix} in {source} has no {what}",
            hint=f"complete the entry in {source}; a mirror replaces discovery for every name under its prefix",
            url=mirror.aci or mirror.pubkeys or "",
            reason="not-found",
            image=name,
        )
    tag = "ac-discovery" if want == "images" else "ac-discovery-pubkeys"
    attempts: List[Tuple[str, str]] = []
    for level in discovery_levels(name):
        # Plain http (if allowed) is a fallback for an https page that could not be read, as in rkt.
        for scheme in ("https", "http") if insecure_http else ("https",):
            url = discovery_url(level, scheme)
            try:
                page = client.get(url, max_size=max_page)
            except FetchError as exc:
                message = exc.message[len(url) + 2 :] if exc.message.startswith(f"{url}: ") else exc.message
                attempts.append((url, f"{exc.context.get('reason', 'error')}: {message}"))
                continue
            endpoints, notes = endpoints_from_tags(parse_meta(page.body), name, filled, insecure_http=insecure_http)
            if _found(endpoints, want):
                endpoints.source = url
                return endpoints
            shown = notes[:MAX_NOTES] + ([f"{len(notes) - MAX_NOTES} more"] if len(notes) > MAX_NOTES else [])
            skipped = f" [{' | '.join(shown)}]" if shown else ""
            attempts.append((url, f"no usable {tag} tag for {name}{skipped}"))
            break
    raise FetchError(
        f"cannot discover {'keys' if want == 'keys' else 'an image'} for {name}: "
        + "; ".join(f"{url}: {what}" for url, what in attempts),
        hint="check the name and the network; for a private or air-gapped site add a mirror in mirrors.json "
        "of the local config",
        url=attempts[0][0],
        reason="not-found",
        image=name,
        attempts=attempts,
    )
