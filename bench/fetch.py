#!/usr/bin/env python3
"""How long `rocket fetch` takes to download, verify and import a signed image, next to the stock tools.

A fetch by name means: discover where the image is, download the ACI and its detached signature over
HTTPS, check the signature against the keys trusted for the name, hash the tar (the SHA-512 is the
image ID) and extract it. Without rocket, a user who knows the URL gets the same with five stock tools,
one after the other:

    curl -o FILE URL && curl -o FILE.asc URL.asc && gpgv --keyring KEYRING FILE.asc FILE \
        && sha512sum FILE && tar -xf FILE -C DIR

That line is the yardstick. rocket does the same work in one Python process that runs gpgv, plus a
discovery request, an fsync of the download (so that a broken download resumes from what is on disk)
and one syncfs of the extracted tree before it publishes the image. The line does not flush anything;
a third contender, the line followed by `sync -f DIR` (the same syncfs, which here flushes the download
too: both live on one file system), shows how much of the difference is that flush. The issue's goals
are a fetch within 1.3x of the line's time, and a peak memory under 100 MB whatever the image size.

The site is real and throw-away: a CA and a server certificate made for the run, an HTTPS server on a
random 127.x.y.z address, port 443 (so that the name `127.x.y.z/bench` is discovered the ordinary way:
a discovery page at `/`, the image under `/images/`), an ed25519 key in a throw-away GNUPGHOME, a
detached armored signature, and a local config with the CA in certs.d/ and the key trusted for the
name. Binding port 443 needs root.

The image is built once and cached under --work: a single big file of random bytes (and, with --tree,
a tree of many small files). Its manifest has a fixed size, so that each run can write the name with
its own address into the cached archive in place (the image ID therefore changes from run to run,
which does not matter: both contenders fetch the same bytes). Every contender runs once untimed first,
so that all of them fetch the image from the page cache; then the contenders run in turn, --repeat
times, in the opposite order every other round. Stores, downloads and trees are deleted and the file
system synced between runs, outside the timing. The disk is shared, so only the ratios measured side
by side in one run mean anything, never the seconds from one run to the next.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import pstats
import random
import re
import shlex
import shutil
import ssl
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
ENGINE_PARENT = REPO / "plugins" / "module_utils"
TESTS = REPO / "tests"
DEFAULT_ROCKET = REPO / ".venv" / "bin" / "rocket"


def _load_import_bench() -> Any:
    """bench/import.py as a module: the sizes, the cache, the random data and the measuring launcher."""
    spec = importlib.util.spec_from_file_location("rocket_bench_import", BENCH / "import.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {BENCH / 'import.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


shared = _load_import_bench()
BenchError = shared.BenchError
KIB, MIB, GIB, MB = shared.KIB, shared.MIB, shared.GIB, shared.MB
DEFAULT_WORK: Path = shared.DEFAULT_WORK

APP = "bench"
VERSION = "1.0.0"
# The manifest is padded with spaces (valid JSON) to this size, so that the name can be rewritten in place.
MANIFEST_SIZE = 1024
PLACEHOLDER_HOST = "127.255.255.255"  # the longest address, written when the archive is built
MTIME = shared.MTIME
SERVE_CHUNK = 1 * MIB
KEY_USER_ID = "Bench Publisher <bench@example.com>"

TIME_GOAL = 1.3
RSS_GOAL_MB = 100.0

ROCKET = "rocket fetch"
PEER = "curl+gpgv+sha512sum+tar"
PEER_SYNC = PEER + "+sync"
CONTENDERS = (ROCKET, PEER, PEER_SYNC)


# -- the input archives ----------------------------------------------------------------------------


def manifest_bytes(host: str, arch: str) -> bytes:
    """The image manifest for `<host>/bench`, version 1.0.0, padded to MANIFEST_SIZE bytes."""
    manifest = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": f"{host}/{APP}",
        "labels": [
            {"name": "version", "value": VERSION},
            {"name": "os", "value": "linux"},
            {"name": "arch", "value": arch},
        ],
        "app": {"exec": ["/bin/true"], "user": "0", "group": "0"},
    }
    data = json.dumps(manifest, indent=2).encode()
    if len(data) > MANIFEST_SIZE:
        raise AssertionError(f"bug: the manifest is {len(data)} bytes, over {MANIFEST_SIZE}")
    return data.ljust(MANIFEST_SIZE - 1) + b"\n"


def _add_manifest(tar: tarfile.TarFile, arch: str) -> None:
    data = manifest_bytes(PLACEHOLDER_HOST, arch)
    tar.addfile(shared._tar_info("manifest", size=len(data)), fileobj=shared.BytesReader(data))
    tar.addfile(shared._tar_info("rootfs", directory=True))


def write_single_file_aci(path: Path, size: int, arch: str) -> None:
    """An ACI whose rootfs holds one file of `size` random (incompressible) bytes."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_manifest(tar, arch)
        tar.addfile(shared._tar_info("rootfs/data", size=size), fileobj=shared.RandomReader(size))


def write_tree_aci(path: Path, total: int, count: int, arch: str) -> None:
    """An ACI whose rootfs holds `count` files of mixed sizes (about `total` bytes), as bench/import.py's."""
    rng = random.Random(shared.TREE_SEED)
    sizes = shared.tree_file_sizes(total, count, rng)
    pool = os.urandom(max(8 * MIB, 2 * max(sizes)))
    made_dirs: Set[str] = set()
    per_dir = shared.TREE_FILES_PER_DIR
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_manifest(tar, arch)
        for number, size in enumerate(sizes):
            folder = f"rootfs/d{number // (per_dir * 10):03d}/s{number // per_dir % 10}"
            for parent in (folder.rsplit("/", 1)[0], folder):
                if parent not in made_dirs:
                    tar.addfile(shared._tar_info(parent, directory=True))
                    made_dirs.add(parent)
            start = rng.randrange(len(pool) - size + 1)
            tar.addfile(
                shared._tar_info(f"{folder}/f{number:06d}", size=size),
                fileobj=shared.BytesReader(pool[start : start + size]),
            )


@dataclass(frozen=True)
class BenchInput:
    """One cached archive to fetch."""

    label: str
    path: Path
    archive_bytes: int


def input_paths(work: Path, size: int) -> Dict[str, Path]:
    """Where each cached archive lives (not bench/import.py's: these have the fixed-size manifest)."""
    tree_total, tree_count = shared.tree_shape(size)
    return {
        "single": work / f"fetch-single-{shared.size_label(size)}.aci",
        "tree": work / f"fetch-tree-{shared.size_label(tree_total)}-{tree_count}files.aci",
    }


def build_inputs(work: Path, size: int, *, tree: bool, arch: str) -> List[BenchInput]:
    """Build (or reuse) the single-file archive, and the tree archive if asked for."""
    paths = input_paths(work, size)
    tree_total, tree_count = shared.tree_shape(size)
    shared.build_once(paths["single"], lambda out: write_single_file_aci(out, size, arch))
    wanted = [(f"{shared.size_label(size)} single file", paths["single"])]
    if tree:
        shared.build_once(paths["tree"], lambda out: write_tree_aci(out, tree_total, tree_count, arch))
        wanted.append((f"{shared.size_label(tree_total)} in {tree_count} files", paths["tree"]))
    return [BenchInput(label, path, path.stat().st_size) for label, path in wanted]


def stamp_host(path: Path, host: str, arch: str) -> None:
    """Write the manifest naming `<host>/bench` over the cached archive's manifest, in place."""
    with tarfile.open(path, "r:") as tar:
        first = tar.next()
    if first is None or first.name != "manifest" or first.size != MANIFEST_SIZE:
        raise BenchError(f"{path} was not built by this script (no {MANIFEST_SIZE}-byte manifest first); delete it")
    with open(path, "r+b") as out:
        os.pwrite(out.fileno(), manifest_bytes(host, arch), first.offset_data)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the cached archive for this run: another run would rewrite its manifest under our feet."""
    with open(path, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchError(f"{path} is in use by another bench/fetch.py run; wait for it to finish") from None
        yield


# -- the HTTPS server ------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Serves the discovery page for any request with `ac-discovery=1`, and the site's files streamed.

    Not tests/httpsserver.py's server: that one reads a file whole into memory per request and writes it
    in 16 KiB pieces (about 400 MB/s here); this one streams 1 MiB pieces from the page cache (about
    1 GB/s), so that the server is not what both contenders wait for.
    """

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(60)
        self.request.do_handshake()  # here, in the request's thread, not in accept()
        super().setup()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.close_connection = True
        parts = urlsplit(self.path)
        self.server.requests.append(self.path)
        served = self.server.files.get(parts.path)
        if served is not None:
            self._send_file(served)
        elif "ac-discovery=1" in parts.query.split("&"):
            self._send(200, self.server.discovery_page, "text/html")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, path: Path) -> None:
        with open(path, "rb", buffering=0) as source:
            size = os.fstat(source.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("Connection", "close")
            self.end_headers()
            buffer = bytearray(SERVE_CHUNK)
            view = memoryview(buffer)
            try:
                while True:
                    count = source.readinto(buffer)
                    if not count:
                        break
                    self.connection.sendall(view[:count])
            except OSError:
                return  # the client hung up


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    files: Dict[str, Path]
    discovery_page: bytes
    requests: List[str]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up


@dataclass
class Site:
    """A publisher's site on its own loopback address and a host's configuration, all under `folder`."""

    folder: Path
    host: str
    arch: str
    ca_file: Path
    local_config: Path
    system_config: Path
    keyring: Path  # the publisher's key, binary, for the yardstick's gpgv
    gpgv_home: Path  # an empty homedir for the yardstick's gpgv, as rocket's
    digest: str
    image_url: str
    signature: Path
    _server: Optional[_Server] = None
    _thread: Optional[threading.Thread] = None
    _gpg_home: Any = None

    @property
    def name(self) -> str:
        return f"{self.host}/{APP}:{VERSION}"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._gpg_home is not None:
            self._gpg_home.close()


def _test_helpers() -> Tuple[Any, Any, Any, Any]:
    """tests/httpsserver.py, tests/gpgkeys.py and the engine's Keystore and host_arch, imported late."""
    for folder in (TESTS, ENGINE_PARENT):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    try:
        import gpgkeys
        import httpsserver
        from rocket.discovery import host_arch
        from rocket.keystore import Keystore
    except ImportError as exc:
        raise BenchError(f"{exc}; run the bench with .venv/bin/python (after bash scripts/setup.sh)") from exc
    return httpsserver, gpgkeys, Keystore, host_arch


def host_arch() -> str:
    return str(_test_helpers()[3]())


def _bind() -> Tuple[_Server, str]:
    """A server on port 443 of a random loopback address (another one if that is taken)."""
    last: Optional[OSError] = None
    for _try in range(20):
        host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        try:
            return _Server((host, 443), _Handler), host
        except OSError as exc:  # taken (by a test or another bench), or not root
            last = exc
    hint = "run as root (the site listens on port 443)" if os.geteuid() != 0 else "free some loopback port 443"
    raise BenchError(f"cannot listen on a loopback address, port 443: {last}; {hint}")


def open_site(folder: Path, image: BenchInput, arch: str) -> Site:
    """Sign `image` (after naming the chosen address in it), start the server and write the config."""
    httpsserver, gpgkeys, Keystore, _ = _test_helpers()
    local, system, www = folder / "etc-rocket", folder / "usr-lib-rocket", folder / "www"
    gpgv_home = folder / "gpgv-home"
    for made in (local, system, www):
        made.mkdir()
    gpgv_home.mkdir(mode=0o700)
    home = gpgkeys.GpgHome(folder / "gnupg")
    site: Optional[Site] = None
    server: Optional[_Server] = None
    try:
        fingerprint = home.generate(KEY_USER_ID, "ed25519", "sign", "1d")
        server, host = _bind()
        # The certificate names the address (and the archive's manifest the name under it): both follow it.
        certs = httpsserver.make_certs(host)
        (folder / "cert.pem").write_bytes(certs.cert_pem)
        (folder / "key.pem").write_bytes(certs.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        ca_file = httpsserver.write_ca(local / "certs.d")

        stamp_host(image.path, host, arch)
        print(f"signing {image.path.name} ...", file=sys.stderr, flush=True)
        signature = www / f"{APP}.aci.asc"
        signature.write_bytes(home.sign(fingerprint, image.path))
        keyring = folder / "keyring.gpg"
        keyring.write_bytes(home.export(fingerprint, armor=False))
        Keystore(local_config=local, system_config=system).add(home.export(fingerprint), prefix=f"{host}/{APP}")

        template = f"https://{host}/images/{{name}}-{{version}}-{{os}}-{{arch}}.{{ext}}"
        page = f'<html><head><meta name="ac-discovery" content="{host} {template}"></head><body></body></html>'
        image_path = f"/images/{host}/{APP}-{VERSION}-linux-{arch}.aci"
        server.files = {image_path: image.path, image_path + ".asc": signature}
        server.discovery_page = page.encode()
        server.requests = []
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        site = Site(
            folder=folder,
            host=host,
            arch=arch,
            ca_file=ca_file,
            local_config=local,
            system_config=system,
            keyring=keyring,
            gpgv_home=gpgv_home,
            digest=_signature_digest(keyring, signature, image.path, gpgv_home),
            image_url=f"https://{host}{image_path}",
            signature=signature,
            _server=server,
            _thread=thread,
            _gpg_home=home,
        )
        thread.start()
        return site
    except AssertionError as exc:  # GpgHome's way of saying gpg failed
        raise BenchError(str(exc)) from exc
    finally:
        if site is None:
            home.close()
            if server is not None:
                server.server_close()


_DIGESTS = {"2": "SHA1", "8": "SHA256", "9": "SHA384", "10": "SHA512", "11": "SHA224"}


def _signature_digest(keyring: Path, signature: Path, data: Path, home: Path) -> str:
    """Check the signature once, as the yardstick will, and say which digest it uses."""
    command = ["gpgv", "--homedir", str(home), "--keyring", str(keyring), "--status-fd", "1"]
    result = subprocess.run([*command, str(signature), str(data)], capture_output=True, check=False)
    for line in result.stdout.decode(errors="replace").splitlines():
        words = line.split()
        if words[:2] == ["[GNUPG:]", "VALIDSIG"] and len(words) > 9:
            return _DIGESTS.get(words[9], f"algo {words[9]}")
    raise BenchError(f"gpgv does not accept the bench's own signature:\n{result.stderr.decode(errors='replace')}")


# -- running one contender -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One timed run: wall seconds, the peak RSS of the process tree, and the image ID it computed."""

    seconds: float
    peak_rss_kib: int
    image_id: str


class Contenders:
    """How to run each contender against the site, in fresh folders under `scratch`, and clean up after."""

    def __init__(self, *, rocket: Path, scratch: Path, site: Site) -> None:
        self.rocket = rocket
        self.scratch = scratch
        self.site = site
        self.env = dict(os.environ)
        # Let Python cache compiled modules, as it does for an installed rocket, but under the scratch
        # folder: with PYTHONDONTWRITEBYTECODE set (as some shells have it), every import would compile
        # the engine again and add about 0.1 s to each run. The warm-up run fills the cache.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        self.store = scratch / "store"
        self.target = scratch / "target"
        self.download = scratch / "download"

    def rocket_args(self) -> List[str]:
        """Everything after the program: a fresh store, the site's config, fetch by name."""
        return [
            "--dir",
            str(self.store),
            "--local-config",
            str(self.site.local_config),
            "--system-config",
            str(self.site.system_config),
            "fetch",
            "--full",
            self.site.name,
        ]

    def peer_steps(self, *, sync: bool) -> List[Tuple[str, str]]:
        """The yardstick's commands, named: what a user would type, one after the other."""
        site = self.site
        q = shlex.quote
        aci = q(str(self.download / f"{APP}.aci"))
        asc = q(str(self.download / f"{APP}.aci.asc"))
        curl = f"curl -sS --fail --cacert {q(str(site.ca_file))}"
        gpgv = f"gpgv --homedir {q(str(site.gpgv_home))} --keyring {q(str(site.keyring))}"
        steps = [
            ("curl", f"{curl} -o {aci} {q(site.image_url)}"),
            ("curl .asc", f"{curl} -o {asc} {q(site.image_url + '.asc')}"),
            ("gpgv", f"{gpgv} {asc} {aci}"),
            ("sha512sum", f"sha512sum {aci}"),
            ("tar -x", f"tar -xf {aci} -C {q(str(self.target))}"),
        ]
        if sync:
            steps.append(("sync -f", f"sync -f {q(str(self.target))}"))
        return steps

    def peer_script(self, *, sync: bool) -> str:
        return " && ".join(command for _name, command in self.peer_steps(sync=sync))

    @contextlib.contextmanager
    def fresh(self) -> Iterator[None]:
        """Empty folders for one run; deleted (and the file system synced) afterwards, untimed."""
        self.target.mkdir()
        self.download.mkdir()
        try:
            yield
        finally:
            for folder in (self.store, self.target, self.download):
                shutil.rmtree(folder, ignore_errors=True)
            # Leave no dirty pages behind, or the next contender's flush would pay for this one's writes.
            os.sync()

    def run(self, name: str) -> Run:
        """Run contender `name` once; remove what it produced (untimed) before returning."""
        with self.fresh():
            if name == ROCKET:
                argv = [str(self.rocket), *self.rocket_args()]
            else:
                argv = ["bash", "-o", "pipefail", "-c", self.peer_script(sync=name == PEER_SYNC)]
            seconds, peak, stdout = shared.run_measured(argv, env=self.env, scratch=self.scratch)
        return Run(seconds=seconds, peak_rss_kib=peak, image_id=image_id_from(stdout, contender=name))


def image_id_from(stdout: str, *, contender: str) -> str:
    """The image ID a contender printed: rocket `sha512-HEX` on its last line, sha512sum `HEX  FILE`."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise BenchError(f"{contender} printed no image ID")
    found = lines[-1] if contender == ROCKET else lines[-1].split()[0]
    return found if found.startswith("sha512-") else "sha512-" + found


# -- measuring -------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """All timed runs of every contender on one input."""

    image: BenchInput
    site_host: str
    digest: str
    runs: Dict[str, List[Run]] = field(default_factory=lambda: {name: [] for name in CONTENDERS})

    def median(self, name: str) -> float:
        return statistics.median(run.seconds for run in self.runs[name])

    def peak_rss_mb(self, name: str) -> float:
        return float(max(run.peak_rss_kib for run in self.runs[name]) * KIB / MB)

    def ratio(self, yardstick: str = PEER) -> float:
        return self.median(ROCKET) / self.median(yardstick)

    def time_verdict(self) -> bool:
        return self.ratio() <= TIME_GOAL

    def memory_verdict(self) -> bool:
        return self.peak_rss_mb(ROCKET) < RSS_GOAL_MB


def measure(image: BenchInput, contenders: Contenders, *, repeat: int) -> Measurement:
    """Warm every contender up once, then run them in turn `repeat` times, reversing the order each round."""
    print(f"measuring {image.label} ...", file=sys.stderr, flush=True)
    result = Measurement(image, contenders.site.host, contenders.site.digest)
    warm_ids = {name: contenders.run(name).image_id for name in CONTENDERS}
    if len(set(warm_ids.values())) != 1:
        listed = "".join(f"\n  {name}: {value}" for name, value in warm_ids.items())
        raise BenchError(f"{image.path}: the contenders disagree on the image ID:{listed}")
    for round_number in range(repeat):
        order = CONTENDERS if round_number % 2 == 0 else tuple(reversed(CONTENDERS))
        for name in order:
            result.runs[name].append(contenders.run(name))
    return result


# -- profiling (--profile DIR) ---------------------------------------------------------------------


def rocket_python(rocket: Path) -> Path:
    """The interpreter of an installed rocket script (its shebang), to run it under cProfile."""
    first = rocket.read_bytes().split(b"\n", 1)[0]
    if not first.startswith(b"#!"):
        raise BenchError(f"{rocket} is not a Python script; --profile needs one")
    return Path(first[2:].decode().strip().split()[0])


def profile(contenders: Contenders, out: Path, image: BenchInput) -> List[str]:
    """One more run of each kind, not timed against each other: where rocket's and the line's time goes.

    Writes into `out`: rocket.prof (cProfile) and its top functions (rocket-profile.txt), strace -c -f of
    rocket (rocket-strace.txt), a timeline of rocket's phases (rocket-timeline.txt: the syscalls that
    start or end one), and the time of each of the line's steps on its own. Returns a short summary.
    """
    out.mkdir(parents=True, exist_ok=True)
    stem = image.path.stem
    lines = [f"== where the time goes, {image.label} (one run each; files in {out}) =="]
    env = contenders.env
    # The line, step by step (each step in its own measured process).
    with contenders.fresh():
        total = 0.0
        for name, command in contenders.peer_steps(sync=True):
            seconds, _peak, _stdout = shared.run_measured(["bash", "-c", command], env=env, scratch=contenders.scratch)
            total += seconds
            lines.append(f"  {PEER_SYNC} step {name:<10} {seconds:7.2f}s")
        lines.append(f"  {PEER_SYNC} steps total     {total:7.2f}s")
    # rocket under strace: a phase timeline, and counts.
    traced = "execve,connect,openat,fsync,fdatasync,syncfs,rename,renameat2,unlink,unlinkat,wait4,exit_group"
    if shutil.which("strace"):
        timeline = out / f"{stem}-rocket-timeline.txt"
        with contenders.fresh():
            argv = ["strace", "-f", "--seccomp-bpf", "-ttt", "-T", "-e", f"trace={traced}", "-o", str(timeline)]
            shared.run_measured(
                [*argv, str(contenders.rocket), *contenders.rocket_args()], env=env, scratch=contenders.scratch
            )
        lines.append("  rocket phases (strace -f -ttt -T): since start, duration, process, what")
        lines += [f"    {line}" for line in phases(timeline, contenders.scratch)]
        counts = out / f"{stem}-rocket-strace.txt"
        with contenders.fresh():
            argv = ["strace", "-c", "-f", "-o", str(counts)]
            shared.run_measured(
                [*argv, str(contenders.rocket), *contenders.rocket_args()], env=env, scratch=contenders.scratch
            )
        lines.append(f"  strace -c -f of rocket: {counts}")
    # rocket under cProfile.
    prof = out / f"{stem}-rocket.prof"
    with contenders.fresh():
        argv = [str(rocket_python(contenders.rocket)), "-m", "cProfile", "-o", str(prof), "-m", "rocket"]
        seconds, _peak, _stdout = shared.run_measured(
            [*argv, *contenders.rocket_args()], env=env, scratch=contenders.scratch
        )
    text = out / f"{stem}-rocket-profile.txt"
    with open(text, "w") as stream:
        stats = pstats.Stats(str(prof), stream=stream)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
    lines.append(f"  rocket under cProfile {seconds:.2f}s: {text}")
    return lines


_STRACE_LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*?)(?:\s+<(\d+\.\d+)>)?$")


def phases(timeline: Path, scratch: Path) -> List[str]:
    """The syscalls of a `strace -f -ttt -T` log that start or end rocket's phases, from its start.

    Each line: seconds since rocket started, how long the call took, and the call (paths under the
    scratch folder shortened to `…`): connects (discovery page, image, signature), the download file
    created, fsyncs that took a while, the gpg and gpgv processes, the skeleton created (the import
    starts), the syncfs, renames into the store, and the end.
    """
    marks: List[str] = []
    start: Optional[float] = None
    pending: Dict[str, Tuple[float, str]] = {}
    programs: Dict[str, Tuple[float, str]] = {}
    for raw in timeline.read_text(errors="replace").splitlines():
        match = _STRACE_LINE.match(raw.strip())
        if not match:
            continue
        pid, moment, call, took = match.group(1), float(match.group(2)), match.group(3), match.group(4)
        start = moment if start is None else start
        if call.endswith("<unfinished ...>"):
            pending[pid] = (moment, call[: -len("<unfinished ...>")].strip())
            continue
        if call.startswith("<..."):
            moment, head = pending.pop(pid, (moment, ""))
            call = head + call.split("resumed>", 1)[-1]
        call = call.replace(str(scratch), "…")
        seconds = float(took) if took else 0.0
        name = call.split("(", 1)[0]
        keep = ""
        if name == "execve" and "= 0" in call:
            program = call.split('"', 2)[1].rsplit("/", 1)[-1]
            programs[pid] = (moment, program)
            keep = f"start {program}"
        elif name == "exit_group" or call.startswith("+++ exited"):
            if pid in programs:
                begun, program = programs.pop(pid)
                keep = f"end {program} (ran {moment - begun:.3f}s)"
        elif name == "connect":
            keep = "connect " + call.split("inet_addr(", 1)[-1].split(")", 1)[0]
        elif name == "openat" and "O_CREAT" in call and (".part" in call or "skeleton" in call):
            keep = "create " + call.split('"', 2)[1].rsplit("/", 1)[-1]
        elif name == "syncfs" or (name in ("fsync", "fdatasync") and seconds >= 0.01):
            keep = call
        elif name in ("rename", "renameat2") and "/images/" in call:
            keep = "publish " + call.split(",")[1].strip()
        if keep:
            marks.append(f"{moment - start:8.3f}s {seconds:7.3f}s  pid {pid:<7} {keep[:100]}")
    return marks


# -- reporting -------------------------------------------------------------------------------------


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def table(result: Measurement) -> str:
    """The per-input table: each contender's median, spread and peak RSS, then the ratios and goals."""
    size = result.image.archive_bytes
    lines = [
        f"== fetch {result.image.label}: {result.image.path.name}, {size / MIB:.0f} MiB, "
        f"from https://{result.site_host}/, signature digest {result.digest} ==",
        f"{'':<30}{'median':>9}{'min':>9}{'max':>9}{'peak RSS':>12}",
    ]
    for name in CONTENDERS:
        seconds = [run.seconds for run in result.runs[name]]
        lines.append(
            f"{name:<30}{result.median(name):>8.2f}s{min(seconds):>8.2f}s{max(seconds):>8.2f}s"
            f"{result.peak_rss_mb(name):>9.0f} MB"
        )
    lines += [
        f"ratio rocket / {PEER}: {result.ratio():.2f}x (goal <= {TIME_GOAL}x: {verdict(result.time_verdict())})",
        f"ratio rocket / {PEER_SYNC}: {result.ratio(PEER_SYNC):.2f}x (how much is the flush; no goal)",
        f"rocket peak RSS {result.peak_rss_mb(ROCKET):.0f} MB (goal < {RSS_GOAL_MB:.0f} MB: "
        f"{verdict(result.memory_verdict())})",
    ]
    return "\n".join(lines)


def summary_line(result: Measurement) -> str:
    return (
        f"fetch {result.image.label}: rocket {result.median(ROCKET):.2f}s, {PEER} {result.median(PEER):.2f}s, "
        f"ratio {result.ratio():.2f}x, peak RSS {result.peak_rss_mb(ROCKET):.0f} MB"
        f"  [time {verdict(result.time_verdict())}, memory {verdict(result.memory_verdict())}]"
    )


def as_json(result: Measurement) -> Dict[str, object]:
    return {
        "input": result.image.label,
        "path": str(result.image.path),
        "archive_bytes": result.image.archive_bytes,
        "signature_digest": result.digest,
        "median_seconds": {name: result.median(name) for name in CONTENDERS},
        "seconds": {name: [run.seconds for run in result.runs[name]] for name in CONTENDERS},
        "peak_rss_mb": {name: result.peak_rss_mb(name) for name in CONTENDERS},
        "ratio": result.ratio(),
        "ratio_with_sync": result.ratio(PEER_SYNC),
        "goals": {
            "time": {"max_ratio": TIME_GOAL, "verdict": verdict(result.time_verdict())},
            "memory": {"max_peak_rss_mb": RSS_GOAL_MB, "verdict": verdict(result.memory_verdict())},
        },
    }


# -- the command line ------------------------------------------------------------------------------


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare `rocket fetch NAME` from a local HTTPS site with curl, gpgv, sha512sum and tar.",
    )
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"cache and scratch folder ({DEFAULT_WORK})")
    parser.add_argument("--size", type=shared.parse_size, default=GIB, help="single-file image size, e.g. 64M (1G)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each contender per input (3)")
    parser.add_argument(
        "--rocket", type=Path, default=DEFAULT_ROCKET, metavar="PATH", help=f"the rocket to run ({DEFAULT_ROCKET})"
    )
    parser.add_argument(
        "--tree", action="store_true", help="also fetch a tree of many small files (a quarter of --size)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="then profile one more run of each into DIR")
    parser.add_argument("--clean", action="store_true", help="delete the cached input archives at the end")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def check_tools(rocket: Path) -> None:
    """Fail early, naming what to install, rather than after building gigabytes of input."""
    if not os.access(rocket, os.X_OK):
        raise BenchError(f"{rocket}: no such executable; run `bash scripts/setup.sh`, or give --rocket PATH")
    tools = ("bash", "curl", "gpg", "gpgv", "gpgconf", "sha512sum", "tar", "sync")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"missing tools: {', '.join(missing)}; install curl, gnupg, gpgv, coreutils and tar")
    if os.geteuid() != 0:
        raise BenchError("run as root: the site listens on port 443 of a loopback address")


def remove_inputs(work: Path, size: int) -> None:
    """Delete this size's cached archives, and the work folder too if nothing else is left in it."""
    for path in input_paths(work, size).values():
        path.unlink(missing_ok=True)
        shared.partial_path(path).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # other sizes' archives, or bench/import.py's: keep them
        work.rmdir()


@dataclass
class Report:
    """Everything one invocation measured."""

    floor_rss_mb: float
    results: List[Measurement]
    profile: List[str]

    def as_json(self, args: argparse.Namespace) -> Dict[str, object]:
        return {
            "rocket": str(args.rocket),
            "size": args.size,
            "repeat": args.repeat,
            "floor_rss_mb": self.floor_rss_mb,
            "inputs": [as_json(result) for result in self.results],
        }


def run(args: argparse.Namespace) -> Report:
    """Build or reuse the inputs, measure each against its own site, and clean up all but the archives."""
    check_tools(args.rocket)
    args.work.mkdir(parents=True, exist_ok=True)
    arch = host_arch()
    inputs = build_inputs(args.work, args.size, tree=args.tree, arch=arch)
    results: List[Measurement] = []
    profiled: List[str] = []
    scratch = Path(tempfile.mkdtemp(prefix="fetch-scratch-", dir=args.work))
    try:
        _seconds, floor_kib, _stdout = shared.run_measured(["true"], env=dict(os.environ), scratch=scratch)
        for number, image in enumerate(inputs):
            with locked(image.path):
                (scratch / f"site{number}").mkdir()
                site = open_site(scratch / f"site{number}", image, arch)
                try:
                    contenders = Contenders(rocket=args.rocket, scratch=scratch, site=site)
                    results.append(measure(image, contenders, repeat=args.repeat))
                    if args.profile:
                        profiled += profile(contenders, args.profile, image)
                finally:
                    site.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if args.clean:
            remove_inputs(args.work, args.size)
    return Report(floor_rss_mb=floor_kib * KIB / MB, results=results, profile=profiled)


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
    if report.profile:
        print()
        print("\n".join(report.profile))
    if args.json:
        args.json.write_text(json.dumps(report.as_json(args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
