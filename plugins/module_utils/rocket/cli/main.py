"""The `rocket` entry point: the command line read, the verb run, and the one place errors become exit codes.

Exit codes: 0 success; 254 an engine error (one line naming what failed and what to do, the root cause
on the next line, the whole chain only with --debug); 2 bad command-line syntax (argparse); 130 on ^C.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

from ..errors import RocketError
from ..limits import ImportLimits
from ..paths import DEFAULT_DATA_DIR, DEFAULT_LOCAL_CONFIG, DEFAULT_SYSTEM_CONFIG
from .context import Context, env_path, parse_insecure_options
from .entry import POD_STARTS
from .quickparse import quick_parse

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, List, Optional

EXIT_ENGINE_ERROR = 254
EXIT_INTERRUPTED = 130


def make_context(args: Any) -> Context:
    limits = ImportLimits()
    size_text = args.max_image_size or os.environ.get("ROCKET_MAX_IMAGE_SIZE")
    entries_text = args.max_image_entries or os.environ.get("ROCKET_MAX_IMAGE_ENTRIES")
    if size_text or entries_text:
        from .units import parse_size  # only given limits need it

        if size_text:
            limits = ImportLimits(
                max_size=parse_size(size_text, flag="--max-image-size"), max_entries=limits.max_entries
            )
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


def _parse(words: List[str]) -> Any:
    """argparse's reading of the command line (exits 2 with usage on a syntax error)."""
    parser = build_parser(words)
    args, extra = parser.parse_known_args(words)
    # argparse stops filling a positional list at the first option (`trust rm --prefix P FPR`); verbs
    # whose positionals are a list of words take the words that come after options too.
    if extra and hasattr(args, "words") and not any(word.startswith("-") for word in extra):
        args.words.extend(extra)
    elif extra:
        parser.error("unrecognized arguments: " + " ".join(extra))
    return args


def build_parser(argv: Optional[List[str]] = None) -> Any:
    """The argparse parser (cli/parser.py); given argv, only the parser of the verb it names is built."""
    from .parser import build_parser as build

    return build(argv)


def _report(exc: RocketError, *, debug: bool) -> None:
    sys.stderr.write(f"rocket: {exc.message}\n")
    if exc.hint:
        sys.stderr.write(f"rocket: hint: {exc.hint}\n")
    cause = exc.__cause__
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    # The root cause, unless the message already says it (errors that wrap one often quote it).
    if cause is not None and not debug and str(cause) not in exc.message:
        sys.stderr.write(f"rocket: cause: {cause}\n")
    if debug:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


def system_error(exc: OSError) -> RocketError:
    """An OSError the engine did not turn into a RocketError, told as one: the path and the reason."""
    import errno

    where = ": ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    message = f"{where}: {exc.strerror}" if where and exc.strerror else str(exc)
    hint = ""
    if exc.errno in (errno.EACCES, errno.EPERM) and os.geteuid() != 0:
        hint = "rocket's store and pods are root's: run it as root (or give --dir a folder this user owns)"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free some space (rocket gc, rocket image gc) and try again"
    return RocketError(message, hint=hint)


def run(argv: Optional[List[str]] = None) -> int:
    """Run one command and return its exit code (no sys.exit: tests call this)."""
    words = list(sys.argv[1:] if argv is None else argv)
    args: Any = quick_parse(words)
    if args is None:
        args = _parse(words)
    debug = bool(getattr(args, "debug", False) or os.environ.get("ROCKET_DEBUG"))
    if args.verb not in POD_STARTS:
        gc.enable()
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
    except OSError as exc:
        # The system refused what the engine did not expect to be refused (a permission, a full disk):
        # what and where, without a traceback (--debug adds it).
        _report(system_error(exc), debug=False)
        if debug:
            import traceback

            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        return EXIT_ENGINE_ERROR
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
