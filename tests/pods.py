"""Pod test helpers: the `rocket` CLI against one data directory, and busybox images to run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

from images import image_manifest
from rocket.build import build_image

ENGINE = Path(__file__).resolve().parents[1] / "plugins" / "module_utils"
BUSYBOX = Path("/bin/busybox")
APPLETS = (
    "sh", "cat", "echo", "ls", "id", "hostname", "sleep", "wget", "ps", "mount", "stat", "head", "tail", "grep",
    "true", "false", "touch", "env", "ip", "nc", "httpd", "mkdir", "stty",
)  # fmt: skip


class Rocket:
    """The CLI against one data directory."""

    def __init__(self, data: Path) -> None:
        self.data = data

    @property
    def env(self) -> Dict[str, str]:
        """The environment of each call, read afresh (tests change PATH and ROCKET_SUPERVISOR)."""
        return dict(os.environ, PYTHONPATH=str(ENGINE))

    def command(self, *args: str, insecure: bool = True) -> List[str]:
        """The CLI's argv for this data directory (with --insecure-options=image unless told otherwise)."""
        flags = ["--insecure-options=image"] if insecure else []
        return [sys.executable, "-m", "rocket", "--dir", str(self.data), *flags, *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run(
            self.command(*args), capture_output=True, text=True, env=self.env, timeout=timeout, stdin=subprocess.DEVNULL
        )
        assert "Traceback" not in result.stderr, result.stderr
        if check:
            assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
        return result

    def sh(
        self, script: str, *flags: str, image: str = "example.com/busybox", **kwargs: Any
    ) -> subprocess.CompletedProcess:
        return self("run", *flags, image, "--exec", "/bin/sh", "--", "-c", script, **kwargs)

    def status(self, uuid: str) -> Dict[str, Any]:
        return json.loads(self("status", "--format=json", uuid).stdout)


def busybox_image(
    tmp: Path, name: str = "example.com/busybox", *, applets: Sequence[str] = APPLETS, **extra: object
) -> Path:
    source = tmp / f"src-{name.replace('/', '-')}"
    (source / "rootfs" / "bin").mkdir(parents=True)
    (source / "rootfs" / "etc").mkdir()
    (source / "rootfs" / "tmp").mkdir()
    shutil.copy2(BUSYBOX, source / "rootfs" / "bin" / "busybox")
    for applet in applets:
        os.symlink("busybox", source / "rootfs" / "bin" / applet)
    (source / "rootfs" / "etc" / "passwd").write_text(
        "root:x:0:0:root:/:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
    )
    (source / "rootfs" / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    manifest = image_manifest(name, **extra)
    (source / "manifest").write_text(json.dumps(manifest))
    output = tmp / f"{source.name}.aci"
    build_image(source, output)
    return output
