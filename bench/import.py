#!/usr/bin/env python3
"""How long `rocket fetch` takes to import an image, next to what a user would run instead.

Importing an ACI means: hash the uncompressed tar (the SHA-512 is the image ID) and extract it. Without
rocket, a user gets both with two stock tools:

    sha512sum IMAGE && tar -xf IMAGE -C DIR                         (uncompressed image)
    gzip -dc IMAGE | sha512sum && tar -xzf IMAGE -C DIR             (gzip image: the ID hashes the tar)

That pair is the yardstick: rocket reads the archive once where the pair reads it twice, but rocket is
Python and also checks every entry, writes the skeleton that lets it export the image bit for bit, and
updates its index. The issue's goals are an import within 1.5x of the pair's time for uncompressed
images, and a peak memory under 100 MB whatever the image size.

rocket also makes the extracted tree durable (one syncfs) before publishing it, which the pair does not
do. A third contender, the pair followed by `sync -f DIR` (the same syncfs), shows how much of the
difference is that flush rather than rocket's own work; it has no goal of its own.

The inputs are built once and cached under --work: a single big file of random bytes (the streaming
case) and a tree of many small files (the per-entry case), each plain and gzip-compressed. Every
contender runs once untimed first, so that all of them read the archive from the page cache; then the
contenders run in turn, --repeat times, in the opposite order every other round. Produced trees are
deleted and the file system synced between runs, outside the timing. The disk is shared, so only the
ratios measured side by side in one run mean anything, never the seconds from one run to the next.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set

REPO = Path(__file__).resolve().parents[1]
ENGINE_PARENT = REPO / "plugins" / "module_utils"
DEFAULT_WORK = Path("/var/tmp/rocket-bench")

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
MB = 1_000_000

MANIFEST = {
    "acKind": "ImageManifest",
    "acVersion": "0.8.11",
    "name": "example.com/bench",
    "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
    "app": {"exec": ["/bin/true"], "user": "0", "group": "0"},
}
MTIME = 1_700_000_000
# The tree image is a quarter of --size, in 20,000 files per GiB of --size (so ~13 KiB a file on average).
TREE_SHARE = 4
TREE_FILES_PER_GIB = 20_000
TREE_FILES_PER_DIR = 100
TREE_SEED = 20_240_601

TIME_GOAL = 1.5
RSS_GOAL_MB = 100.0

ROCKET = "rocket fetch"
PAIR = "sha512sum+tar"
PAIR_SYNC = "sha512sum+tar+sync"
CONTENDERS = (ROCKET, PAIR, PAIR_SYNC)


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and what to do about it."""


# -- sizes -----------------------------------------------------------------------------------------

_SIZE = re.compile(r"^(\d+)\s*([KMGT]?)(?:i?B)?$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`1G`, `64M`, `512MiB`, `1048576` into bytes; K/M/G/T are powers of 1024."""
    match = _SIZE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write it like 1G, 64M or 1048576")
    number, unit = int(match.group(1)), match.group(2).upper()
    size: int = number * 1024 ** "_KMGT".index(unit or "_")
    if size < MIB:
        raise argparse.ArgumentTypeError(f"{text!r} is too small; give at least 1M")
    return size


def size_label(size: int) -> str:
    """The shortest exact binary label for a size: 1GiB, 64MiB, 1536KiB."""
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if size % unit == 0:
            return f"{size // unit}{name}"
    return f"{size}B"


# -- the input archives ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchInput:
    """One archive to import, and the time goal that applies to it (None: no goal)."""

    label: str
    path: Path
    archive_bytes: int
    compressed: bool
    time_goal: Optional[float]


class RandomReader:
    """A read-only stream of `size` random bytes, so a big file never has to exist on disk first."""

    def __init__(self, size: int) -> None:
        self.remaining = size

    def read(self, size: int = -1) -> bytes:
        count = self.remaining if size < 0 else min(size, self.remaining)
        self.remaining -= count
        return os.urandom(count)


class BytesReader:
    """The least a `tarfile.addfile` source needs: `read`, over bytes held in memory."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)

    def read(self, size: int = -1) -> bytes:
        count = len(self._view) if size < 0 else size
        chunk, self._view = self._view[:count], self._view[count:]
        return bytes(chunk)


def _tar_info(name: str, *, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = size
    info.mtime = MTIME
    info.uname = info.gname = "root"
    return info


def _add_manifest(tar: tarfile.TarFile) -> None:
    data = json.dumps(MANIFEST, indent=2).encode()
    tar.addfile(_tar_info("manifest", size=len(data)), fileobj=BytesReader(data))
    tar.addfile(_tar_info("rootfs", directory=True))


def write_single_file_aci(path: Path, size: int) -> None:
    """An ACI whose rootfs holds one file of `size` random (incompressible) bytes."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_manifest(tar)
        tar.addfile(_tar_info("rootfs/data", size=size), fileobj=RandomReader(size))


def tree_file_sizes(total: int, count: int, rng: random.Random) -> List[int]:
    """`count` file sizes summing to about `total`: log-uniform, so most are small and a few are big."""
    raw = [2 ** rng.uniform(0, 14) for _ in range(count)]
    scale = total / sum(raw)
    return [int(value * scale) for value in raw]


def write_tree_aci(path: Path, total: int, count: int) -> None:
    """An ACI whose rootfs holds `count` files of mixed sizes (about `total` bytes) in nested folders."""
    rng = random.Random(TREE_SEED)
    sizes = tree_file_sizes(total, count, rng)
    # Slices of one random pool, at random offsets: incompressible, and cheap to make.
    pool = os.urandom(max(8 * MIB, 2 * max(sizes)))
    made_dirs: Set[str] = set()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_manifest(tar)
        for number, size in enumerate(sizes):
            folder = f"rootfs/d{number // (TREE_FILES_PER_DIR * 10):03d}/s{number // TREE_FILES_PER_DIR % 10}"
            for parent in (folder.rsplit("/", 1)[0], folder):
                if parent not in made_dirs:
                    tar.addfile(_tar_info(parent, directory=True))
                    made_dirs.add(parent)
            start = rng.randrange(len(pool) - size + 1)
            tar.addfile(
                _tar_info(f"{folder}/f{number:06d}", size=size), fileobj=BytesReader(pool[start : start + size])
            )


def gzip_file(source: Path, target: Path) -> None:
    """Compress with pigz if the host has it, else gzip; level 1, since only the build time matters."""
    tool = shutil.which("pigz") or "gzip"
    with open(target, "wb") as out:
        subprocess.run([tool, "-1", "-c", str(source)], stdout=out, check=True)


def partial_path(path: Path) -> Path:
    """Where `path` is written until it is complete."""
    return path.with_name(path.name + ".partial")


def build_once(path: Path, write: Callable[[Path], None]) -> None:
    """Make `path` with `write` unless it is cached; a killed build never leaves a truncated `path`."""
    if path.exists():
        return
    print(f"building {path} ...", file=sys.stderr, flush=True)
    partial = partial_path(path)
    try:
        write(partial)
    except (OSError, subprocess.CalledProcessError) as exc:
        partial.unlink(missing_ok=True)
        raise BenchError(f"cannot build {path}: {exc}; check free space under {path.parent}") from exc
    os.replace(partial, path)


def input_paths(work: Path, size: int) -> Dict[str, Path]:
    """Where each cached archive lives; the names carry the sizes, so runs of different sizes coexist."""
    tree_total, tree_count = tree_shape(size)
    single = work / f"single-{size_label(size)}.aci"
    tree = work / f"tree-{size_label(tree_total)}-{tree_count}files.aci"
    return {
        "single": single,
        "single.gz": single.with_name(single.name + ".gz"),
        "tree": tree,
        "tree.gz": tree.with_name(tree.name + ".gz"),
    }


def tree_shape(size: int) -> tuple[int, int]:
    """Total bytes and file count of the tree image that goes with a --size."""
    return size // TREE_SHARE, max(100, TREE_FILES_PER_GIB * size // GIB)


def build_inputs(work: Path, size: int) -> List[BenchInput]:
    """Build (or reuse) the four archives and describe them."""
    paths = input_paths(work, size)
    tree_total, tree_count = tree_shape(size)
    build_once(paths["single"], lambda out: write_single_file_aci(out, size))
    build_once(paths["single.gz"], lambda out: gzip_file(paths["single"], out))
    build_once(paths["tree"], lambda out: write_tree_aci(out, tree_total, tree_count))
    build_once(paths["tree.gz"], lambda out: gzip_file(paths["tree"], out))
    single, tree = size_label(size), f"{size_label(tree_total)} in {tree_count} files"
    described = [
        (f"{single} plain", paths["single"], False),
        (f"{single} gzip", paths["single.gz"], True),
        (f"{tree} plain", paths["tree"], False),
        (f"{tree} gzip", paths["tree.gz"], True),
    ]
    return [
        BenchInput(
            label=label,
            path=path,
            archive_bytes=path.stat().st_size,
            compressed=compressed,
            time_goal=None if compressed else TIME_GOAL,
        )
        for label, path, compressed in described
    ]


# -- running one contender -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One timed run: wall seconds, the peak RSS of the process tree, and the image ID it computed."""

    seconds: float
    peak_rss_kib: int
    image_id: str


# Runs argv[2:] and writes "<exit code> <seconds> <peak RSS in KiB>" to the file argv[1]. Why a separate
# process: at exec, Linux charges a child with the peak RSS of the process it was forked from, so any
# child of this script would report at least this script's own peak (tens of MB after building the
# inputs). This launcher is a bare `python -I -S` of about 5 MB, which is the floor of every RSS figure.
MEASURE = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_pid, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    out.write(f"{os.waitstatus_to_exitcode(status)} {seconds} {usage.ru_maxrss}")
"""


def run_measured(argv: List[str], *, env: Dict[str, str], scratch: Path) -> tuple[float, int, str]:
    """Run `argv`, return (wall seconds, peak RSS in KiB, stdout); raise BenchError if it fails.

    The time is taken from fork to reaping. The peak RSS comes from wait4 on the child: the largest of
    the child and the children it waited for (the shell's sha512sum, gzip and tar).
    """
    report = scratch / "measure"
    with open(scratch / "stdout", "w+b") as out, open(scratch / "stderr", "w+b") as err:
        launcher = [sys.executable, "-I", "-S", "-c", MEASURE, str(report), *argv]
        subprocess.run(launcher, env=env, stdout=out, stderr=err, check=False)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    try:
        code, seconds, peak_kib = report.read_text().split()
        report.unlink()
    except (OSError, ValueError):
        raise BenchError(f"the measuring launcher failed on {shlex.join(argv)}:\n{stderr.strip()}") from None
    if int(code) != 0:
        raise BenchError(f"{shlex.join(argv)} failed with exit code {code}:\n{stderr.strip()}")
    return float(seconds), int(peak_kib), stdout


class Contenders:
    """How to run each contender on one archive, in a fresh folder under `scratch`, and clean up after."""

    def __init__(self, *, rocket: Optional[str], scratch: Path) -> None:
        self.scratch = scratch
        self.env = dict(os.environ)
        # Let Python cache compiled modules, as it does for an installed rocket, but under the scratch
        # folder: with PYTHONDONTWRITEBYTECODE set (as some shells have it), every import would compile
        # the engine again and add about 0.1 s to each run. The warm-up run fills the cache.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        if rocket:
            self.rocket_argv = [rocket]
        else:
            self.rocket_argv = [sys.executable, "-m", "rocket"]
            self.env["PYTHONPATH"] = str(ENGINE_PARENT)

    def rocket_command(self, image: BenchInput, store: Path) -> List[str]:
        """`rocket fetch` of the image file into a new store, printing the full image ID."""
        return [*self.rocket_argv, "--dir", str(store), "fetch", "--insecure-options=image", "--full", str(image.path)]

    def run(self, name: str, image: BenchInput) -> Run:
        """Run contender `name` once on `image`; remove what it produced (untimed) before returning."""
        target = self.scratch / "target"
        target.mkdir()
        try:
            if name == ROCKET:
                argv = self.rocket_command(image, target)
            else:
                argv = ["bash", "-o", "pipefail", "-c", pair_script(image, target, sync=name == PAIR_SYNC)]
            seconds, peak, stdout = run_measured(argv, env=self.env, scratch=self.scratch)
        finally:
            shutil.rmtree(target)
            # Leave no dirty pages behind, or the next contender's syncfs would pay for this one's writes.
            os.sync()
        return Run(seconds=seconds, peak_rss_kib=peak, image_id=image_id_from(stdout, contender=name))


def pair_script(image: BenchInput, target: Path, *, sync: bool) -> str:
    """The shell line a user would type to hash and extract `image` into `target`."""
    path, folder = shlex.quote(str(image.path)), shlex.quote(str(target))
    if image.compressed:
        script = f"gzip -dc {path} | sha512sum && tar -xzf {path} -C {folder}"
    else:
        script = f"sha512sum {path} && tar -xf {path} -C {folder}"
    return f"{script} && sync -f {folder}" if sync else script


def image_id_from(stdout: str, *, contender: str) -> str:
    """The image ID a contender printed.

    rocket prints `sha512-HEX` (`--full`), the image asked for on the last line after any dependencies;
    sha512sum prints `HEX  FILE`.
    """
    lines = stdout.split("\n") if contender == ROCKET else stdout.split()
    words = [line.strip() for line in lines if line.strip()]
    if not words:
        raise BenchError(f"{contender} printed no image ID")
    found = words[-1] if contender == ROCKET else words[0]
    return found if found.startswith("sha512-") else "sha512-" + found


# -- measuring -------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """All timed runs of every contender on one input."""

    image: BenchInput
    runs: Dict[str, List[Run]] = field(default_factory=lambda: {name: [] for name in CONTENDERS})

    def median(self, name: str) -> float:
        return statistics.median(run.seconds for run in self.runs[name])

    def peak_rss_mb(self, name: str) -> float:
        return max(run.peak_rss_kib for run in self.runs[name]) * KIB / MB

    def ratio(self, yardstick: str = PAIR) -> float:
        return self.median(ROCKET) / self.median(yardstick)

    def time_verdict(self) -> Optional[bool]:
        return None if self.image.time_goal is None else self.ratio() <= self.image.time_goal

    def memory_verdict(self) -> bool:
        return self.peak_rss_mb(ROCKET) < RSS_GOAL_MB


def measure(image: BenchInput, contenders: Contenders, *, repeat: int) -> Measurement:
    """Warm every contender up once, then run them in turn `repeat` times, reversing the order each round."""
    print(f"measuring {image.label} ...", file=sys.stderr, flush=True)
    result = Measurement(image)
    warm_ids = {name: contenders.run(name, image).image_id for name in CONTENDERS}
    if len(set(warm_ids.values())) != 1:
        listed = "".join(f"\n  {name}: {value}" for name, value in warm_ids.items())
        raise BenchError(f"{image.path}: the contenders disagree on the image ID:{listed}")
    for round_number in range(repeat):
        order = CONTENDERS if round_number % 2 == 0 else tuple(reversed(CONTENDERS))
        for name in order:
            result.runs[name].append(contenders.run(name, image))
    return result


# -- reporting -------------------------------------------------------------------------------------


def verdict(passed: Optional[bool]) -> str:
    return "n/a" if passed is None else "PASS" if passed else "MISS"


def table(result: Measurement) -> str:
    """The per-input table: each contender's median, spread and peak RSS, then the ratios and goals."""
    size = result.image.archive_bytes
    lines = [
        f"== import {result.image.label}: {result.image.path.name}, {size / MIB:.0f} MiB on disk ==",
        f"{'':<22}{'median':>9}{'min':>9}{'max':>9}{'peak RSS':>12}",
    ]
    for name in CONTENDERS:
        seconds = [run.seconds for run in result.runs[name]]
        lines.append(
            f"{name:<22}{result.median(name):>8.2f}s{min(seconds):>8.2f}s{max(seconds):>8.2f}s"
            f"{result.peak_rss_mb(name):>9.0f} MB"
        )
    goal = result.image.time_goal
    goal_text = f"goal <= {goal}x: {verdict(result.time_verdict())}" if goal else "no goal for compressed input"
    lines += [
        f"ratio rocket / {PAIR}: {result.ratio():.2f}x ({goal_text})",
        f"ratio rocket / {PAIR_SYNC}: {result.ratio(PAIR_SYNC):.2f}x (how much is the syncfs; no goal)",
        f"rocket peak RSS {result.peak_rss_mb(ROCKET):.0f} MB (goal < {RSS_GOAL_MB:.0f} MB: "
        f"{verdict(result.memory_verdict())})",
    ]
    return "\n".join(lines)


def summary_line(result: Measurement) -> str:
    return (
        f"import {result.image.label}: rocket {result.median(ROCKET):.2f}s, {PAIR} {result.median(PAIR):.2f}s, "
        f"ratio {result.ratio():.2f}x, peak RSS {result.peak_rss_mb(ROCKET):.0f} MB"
        f"  [time {verdict(result.time_verdict())}, memory {verdict(result.memory_verdict())}]"
    )


def as_json(result: Measurement) -> Dict[str, object]:
    return {
        "input": result.image.label,
        "path": str(result.image.path),
        "compressed": result.image.compressed,
        "archive_bytes": result.image.archive_bytes,
        "median_seconds": {name: result.median(name) for name in CONTENDERS},
        "seconds": {name: [run.seconds for run in result.runs[name]] for name in CONTENDERS},
        "peak_rss_mb": {name: result.peak_rss_mb(name) for name in CONTENDERS},
        "ratio": result.ratio(),
        "ratio_with_sync": result.ratio(PAIR_SYNC),
        "goals": {
            "time": {"max_ratio": result.image.time_goal, "verdict": verdict(result.time_verdict())},
            "memory": {"max_peak_rss_mb": RSS_GOAL_MB, "verdict": verdict(result.memory_verdict())},
        },
    }


# -- the command line ------------------------------------------------------------------------------


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare `rocket fetch` of a local ACI with `sha512sum FILE && tar -xf FILE`.",
    )
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"cache and scratch folder ({DEFAULT_WORK})")
    parser.add_argument("--size", type=parse_size, default=GIB, help="single-file image size, e.g. 64M (1G)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each contender per input (3)")
    parser.add_argument("--rocket", metavar="PATH", help="an installed rocket (default: this tree's engine)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    parser.add_argument("--clean", action="store_true", help="delete the cached input archives at the end")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def check_tools(rocket: Optional[str]) -> None:
    """Fail early, naming what to install, rather than after building gigabytes of input."""
    if rocket and shutil.which(rocket) is None:
        raise BenchError(f"--rocket {rocket}: no such executable; give the path of an installed rocket")
    missing = [tool for tool in ("bash", "sha512sum", "tar", "gzip", "sync") if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"missing tools: {', '.join(missing)}; install coreutils, tar and gzip")


def remove_inputs(work: Path, size: int) -> None:
    """Delete this size's cached archives, and the work folder too if nothing else is left in it."""
    for path in input_paths(work, size).values():
        path.unlink(missing_ok=True)
        partial_path(path).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # other sizes' archives, or files that are not ours: keep them
        work.rmdir()


@dataclass
class Report:
    """Everything one invocation measured."""

    floor_rss_mb: float
    results: List[Measurement]

    def as_json(self, args: argparse.Namespace) -> Dict[str, object]:
        return {
            "rocket": args.rocket or f"{sys.executable} -m rocket (PYTHONPATH={ENGINE_PARENT})",
            "size": args.size,
            "repeat": args.repeat,
            "floor_rss_mb": self.floor_rss_mb,
            "inputs": [as_json(result) for result in self.results],
        }


def run(args: argparse.Namespace) -> Report:
    """Build or reuse the inputs, measure every input, and clean up all but the cached archives."""
    check_tools(args.rocket)
    args.work.mkdir(parents=True, exist_ok=True)
    inputs = build_inputs(args.work, args.size)
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=args.work))
    try:
        _seconds, floor_kib, _stdout = run_measured(["true"], env=dict(os.environ), scratch=scratch)
        contenders = Contenders(rocket=args.rocket, scratch=scratch)
        results = [measure(image, contenders, repeat=args.repeat) for image in inputs]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if args.clean:
            remove_inputs(args.work, args.size)
    return Report(floor_rss_mb=floor_kib * KIB / MB, results=results)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark; exit 0 when it ran (whatever the verdicts), 1 when a step failed."""
    args = parse_args(argv)
    try:
        report = run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    print(f"(peak RSS figures cannot go below {report.floor_rss_mb:.0f} MB, the measuring launcher's own)\n")
    for result in report.results:
        print(table(result), end="\n\n")
    for result in report.results:
        print(summary_line(result))
    if args.json:
        args.json.write_text(json.dumps(report.as_json(args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
