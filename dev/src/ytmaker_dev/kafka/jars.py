"""Fetching the Kafka jars with Maven (``deploy/kafka/pom.xml``) into a cache outside the source
tree, once."""

from __future__ import annotations

import fcntl
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import FetchError
from .settings import FETCH_MARKER, KAFKA_VERSION, find_mvn, find_pom, libs_dir


def is_fetched(libs: Path | None = None, version: str = KAFKA_VERSION) -> bool:
    """True when the jars of *version* are complete in *libs* (marker file + server jar)."""
    libs = libs if libs is not None else libs_dir(version)
    return (libs.parent / FETCH_MARKER).is_file() and (libs / f"kafka_2.13-{version}.jar").is_file()


def fetch(*, version: str = KAFKA_VERSION, libs: Path | None = None, quiet: bool = True) -> Path:
    """Make sure the Kafka jars are in the cache and return the libs directory.

    Skips Maven when a previous fetch completed (marker file). Safe to call from several
    processes at once (file lock). Maven downloads into a temporary directory that is renamed
    into place, so an interrupted fetch never leaves a half-filled libs directory behind.
    Raises :class:`ToolMissingError` (no mvn) or :class:`FetchError`.
    """
    libs = (libs if libs is not None else libs_dir(version)).absolute()
    if is_fetched(libs, version):
        return libs
    home = libs.parent
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_fetched(libs, version):
            return libs
        mvn = find_mvn()
        pom = find_pom()
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=home))
        try:
            cmd = [
                mvn,
                "-B",
                "-q" if quiet else "--no-transfer-progress",
                "-Dstyle.color=never",
                "-f",
                str(pom),
                f"-Dkafka.version={version}",
                f"-Dkafka.libs.dir={staging}",
                "package",
            ]
            if not quiet:
                print(f"fetching Kafka {version} jars into {libs} ...", file=sys.stderr)
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if quiet else sys.stderr,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                tail = "\n".join((proc.stdout or "").strip().splitlines()[-25:])
                raise FetchError(
                    f"Maven could not fetch Kafka {version} (exit {proc.returncode}; is the "
                    f"Maven repository reachable?):\n{shlex.join(cmd)}\n{tail}"
                )
            if not (staging / f"kafka_2.13-{version}.jar").is_file():
                raise FetchError(f"Maven succeeded but kafka_2.13-{version}.jar is missing")
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
            jars = sorted(p.name for p in libs.glob("*.jar"))
            (home / FETCH_MARKER).write_text(
                f"kafka {version}\n{len(jars)} jars\n" + "".join(f"{j}\n" for j in jars)
            )
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return libs
