"""The `rocket` entry point: global flags, the verbs, and the one place errors become exit codes.

Exit codes: 0 success; 254 an engine error (one line naming what failed and what to do, the root cause
on the next line, the whole chain only with --debug); 2 bad command-line syntax (argparse); 130 on ^C.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from ..errors import RocketError
from ..limits import ImportLimits
from ..paths import DEFAULT_DATA_DIR, DEFAULT_LOCAL_CONFIG, DEFAULT_SYSTEM_CONFIG
from .context import Context, env_path, parse_insecure_options
from .units import parse_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional

EXIT_ENGINE_ERROR = 254
EXIT_INTERRUPTED = 130

# Verb name -> the module that defines it (one file per verb); a command imports only its own.
TOP_LEVEL_VERBS = {
    "fetch": "fetch",
    "trust": "trust",
    "prepare": "pod_prepare",
    "run": "pod_run",
    "run-prepared": "pod_run_prepared",
    "list": "pod_list",
    "status": "pod_status",
    "stop": "pod_stop",
    "rm": "pod_rm",
    "gc": "pod_gc",
    "cat-manifest": "pod_cat_manifest",
    "logs": "pod_logs",
    "enter": "pod_enter",
    "export": "pod_export",
    "version": "version",
    "config": "config",
    "boot": "boot",
}
IMAGE_VERBS = {
    "list": "image_list",
    "rm": "image_rm",
    "gc": "image_gc",
    "export": "image_export",
    "extract": "image_extract",
    "render": "image_extract",
    "cat-manifest": "image_cat_manifest",
    "verify": "image_verify",
    "build": "image_build",
    "validate": "image_validate",
    "audit": "image_audit",
}


def _register(table: Dict[str, str], subparsers: Any, wanted: Optional[str]) -> None:
    """Register the verbs of `table` in their listed order; only `wanted`'s module is imported if given."""
    modules = [table[wanted]] if wanted is not None else list(dict.fromkeys(table.values()))
    for name in modules:
        importlib.import_module(f"{__package__}.{name}").register(_OnlyVerbs(subparsers, wanted))


def _add_global_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The global flags, accepted before or after the verb (as rkt's are)."""
    default: Callable[[object], object] = (lambda value: value) if top else (lambda _value: argparse.SUPPRESS)
    parser.add_argument("--dir", default=default(None), help="data directory (default /var/lib/rocket, $ROCKET_DIR)")
    parser.add_argument("--local-config", default=default(None), help="local config (default /etc/rocket)")
    parser.add_argument("--system-config", default=default(None), help="vendor config (default /usr/lib/rocket)")
    parser.add_argument("--insecure-options", default=default(None), help="comma-separated checks to skip")
    parser.add_argument("--max-image-size", default=default(None), help="largest uncompressed image (default 64G)")
    parser.add_argument("--max-image-entries", default=default(None), help="most entries in an image (default 1000000)")
    parser.add_argument("--debug", action="store_true", default=default(False), help="print error chains in full")


class _Discard:
    """Stands in for the parser of a verb that was not asked for: building all 30 costs ~35 ms."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_defaults(self, **kwargs: Any) -> None:
        pass

    def add_mutually_exclusive_group(self, **kwargs: Any) -> _Discard:
        return self


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's own, sized without shutil: argparse makes one for every add_argument, and shutil (which
    imports bz2 and lzma) would cost ~3 ms of every command. The width is what shutil would find."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: Optional[int] = None):
        super().__init__(prog, indent_increment, max_help_position, _terminal_columns() - 2 if width is None else width)


_COLUMNS: List[int] = []  # argparse makes a formatter for every add_argument: ask the terminal once


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else the terminal on stdout, else 80."""
    if not _COLUMNS:
        _COLUMNS.append(_measure_columns())
    return _COLUMNS[0]


def _measure_columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _OnlyVerbs:
    """A subparsers action that builds only the named verbs' parsers (all when `wanted` is None)."""

    def __init__(self, action: Any, wanted: Optional[str]) -> None:
        self.action = action
        self.wanted = wanted

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if self.wanted is None or name == self.wanted:
            kwargs.setdefault("formatter_class", _HelpFormatter)
            return self.action.add_parser(name, **kwargs)
        return _Discard()


GLOBAL_VALUE_FLAGS = (
    "--dir",
    "--local-config",
    "--system-config",
    "--insecure-options",
    "--max-image-size",
    "--max-image-entries",
)


def _positionals(argv: List[str]) -> List[str]:
    """The words before the verb's own arguments: the verb, and for `image` its subcommand."""
    words: List[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word in ("-h", "--help"):
            return []
        if word.startswith("-"):
            skip = word in GLOBAL_VALUE_FLAGS
            continue
        words.append(word)
        if len(words) == 2 or (words and words[0] != "image"):
            break
    return words


def build_parser(argv: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """The parser; given argv, only the parser of the verb it names is built (help builds them all)."""
    words = _positionals(argv) if argv is not None else []
    verb = words[0] if words else None
    parser = argparse.ArgumentParser(
        prog="rocket", description="rocket: an App Container runtime", formatter_class=_HelpFormatter
    )
    _add_global_flags(parser, top=True)
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    wanted = verb if verb is not None and (verb in TOP_LEVEL_VERBS or verb == "image") else None
    if wanted != "image":
        _register(TOP_LEVEL_VERBS, verbs, wanted)
    if wanted in (None, "image"):
        image = verbs.add_parser("image", help="operate on images in the store", formatter_class=_HelpFormatter)
        image_verbs = image.add_subparsers(dest="image_verb", metavar="SUBCOMMAND", required=True)
        subverb = words[1] if wanted == "image" and len(words) > 1 and words[1] in IMAGE_VERBS else None
        _register(IMAGE_VERBS, image_verbs, subverb)
    for leaf in _leaf_parsers(parser):
        _add_global_flags(leaf, top=False)
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser) -> List[argparse.ArgumentParser]:
    leaves: List[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                leaves.extend(_leaf_parsers(child) or [child])
    return leaves


def make_context(args: argparse.Namespace) -> Context:
    limits = ImportLimits()
    size_text = args.max_image_size or os.environ.get("ROCKET_MAX_IMAGE_SIZE")
    entries_text = args.max_image_entries or os.environ.get("ROCKET_MAX_IMAGE_ENTRIES")
    if size_text:
        limits = ImportLimits(max_size=parse_size(size_text, flag="--max-image-size"), max_entries=limits.max_entries)
    if entries_text:
        limits = ImportLimits(
            max_size=limits.max_size, max_entries=int(parse_size(entries_text, flag="--max-image-entries"))
        )
    return Context(
        data_dir=Path(args.dir) if args.dir else env_path("ROCKET_DIR", DEFAULT_DATA_DIR),
        local_config=Path(args.local_config)
        if args.local_config
        else env_path("ROCKET_LOCAL_CONFIG", DEFAULT_LOCAL_CONFIG),
        system_config=Path(args.system_config)
        if args.system_config
        else env_path("ROCKET_SYSTEM_CONFIG", DEFAULT_SYSTEM_CONFIG),
        insecure=parse_insecure_options(args.insecure_options or os.environ.get("ROCKET_INSECURE_OPTIONS", "")),
        debug=bool(args.debug or os.environ.get("ROCKET_DEBUG")),
        limits=limits,
    )


def _report(exc: RocketError, *, debug: bool) -> None:
    sys.stderr.write(f"rocket: {exc.message}\n")
    if exc.hint:
        sys.stderr.write(f"rocket: hint: {exc.hint}\n")
    cause = exc.__cause__
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    if cause is not None and not debug:
        sys.stderr.write(f"rocket: cause: {cause}\n")
    if debug:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


def run(argv: Optional[List[str]] = None) -> int:
    """Run one command and return its exit code (no sys.exit: tests call this)."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words)
    args, extra = parser.parse_known_args(words)
    # argparse stops filling a positional list at the first option (`trust rm --prefix P FPR`); verbs
    # whose positionals are a list of words take the words that come after options too.
    if extra and hasattr(args, "words") and not any(word.startswith("-") for word in extra):
        args.words.extend(extra)
    elif extra:
        parser.error("unrecognized arguments: " + " ".join(extra))
    debug = bool(getattr(args, "debug", False) or os.environ.get("ROCKET_DEBUG"))
    ctx: Optional[Context] = None
    try:
        ctx = make_context(args)
        return int(args.run(args, ctx))
    except RocketError as exc:
        _report(exc, debug=debug)
        return EXIT_ENGINE_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("rocket: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    finally:
        if ctx is not None:
            ctx.close()


def main() -> None:
    """The console script: the only exit in the engine.

    os._exit after flushing skips the interpreter's teardown (~20 ms per command): every file the
    engine writes is closed by then, and locks are flocks that the kernel drops with the process.
    """
    code = run()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)
