"""The project's two images, built where the cloud's registry is not: on a builder engine (the
machine's own, or one this run starts), from the pinned Debian base or, where that cannot be
pulled, a stand-in of the same Debian release made with debootstrap; Patroni's distributions
downloaded on the host into a hash-checked wheelhouse, so the build needs no HTTPS of its own
(a TLS-intercepting proxy that the build's container does not trust is then no obstacle).
Then loaded into each Swarm node's engine that runs a service of that image.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from dpc.services import BUILT_IMAGES, Image, local_repository
from engine.api import Engine, EngineError
from engine.netns import unmount_under
from providers.common.database import BUILD_CACHE_PATTERNS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PULL_TIMEOUT = 300.0
BUILD_TIMEOUT = 1200.0
LOAD_TIMEOUT = 600.0
ENGINE_START_TIMEOUT = 60.0
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_CODENAMES = {"12": "bookworm"}
"""The release a pinned `debian:<major>.<point>` base belongs to, for debootstrap."""


def pinned_base() -> str:
    """The base every project image is built from: the Dockerfiles' `BASE_IMAGE` default (one
    value, checked by a test to be the same in both).
    """
    bases = {re.search(r"^ARG BASE_IMAGE=(\S+)$", (PROJECT_ROOT / context / "Dockerfile").read_text(), re.M) for context in BUILT_IMAGES.values()}
    found = {match.group(1) for match in bases if match}
    if len(found) != 1:
        raise RuntimeError(f"the project's Dockerfiles must name one pinned BASE_IMAGE; found {sorted(found) or 'none'}")
    return found.pop()


def local_image(key: str, tag: str) -> str:
    """A project image's name in an engine with no registry: what the services run."""
    return f"{local_repository(key)}:{tag}"


def _pull(builder: Engine, reference: str) -> str:
    """Pulls `reference`; the engine's error, or "" once it is there."""
    name, _, tag = reference.partition(":")
    query = {"fromImage": reference} if "@" in reference else {"fromImage": name, "tag": tag}  # a digest is pulled as part of the name
    try:
        builder.post("/images/create", query=query, timeout=PULL_TIMEOUT)
    except (EngineError, OSError) as error:
        return str(error)
    return "" if builder.image_present(reference) else f"{reference} is not in the engine after the pull"


def base_image(builder: Engine, cache: Path, say: Callable[[str], None]) -> str:
    """The image to build from: the pinned base if the builder has it or can pull it; else a
    stand-in of the same Debian release, debootstrapped once into `cache` and imported.
    """
    pinned = pinned_base()
    if builder.image_present(pinned):
        return pinned
    if not (error := _pull(builder, pinned)):
        return pinned
    name, _, version = pinned.partition(":")
    major = version.split(".")[0]
    if name != "debian" or major not in DEBIAN_CODENAMES:
        raise RuntimeError(f"cannot pull {pinned} ({error}) and know no way to make a stand-in for it")
    codename = DEBIAN_CODENAMES[major]
    stand_in = f"dpc-base:debian-{major}"
    if builder.image_present(stand_in):
        return stand_in
    say(f"{pinned} cannot be pulled ({error}); building a Debian {major} ({codename}) base with debootstrap instead")
    rootfs = cache / f"rootfs-{codename}"
    if rootfs.exists():
        shutil.rmtree(rootfs)
    subprocess.run(["debootstrap", "--variant=minbase", codename, str(rootfs), DEBIAN_MIRROR], check=True, capture_output=True, timeout=BUILD_TIMEOUT)
    # Like Debian's slim images: no package lists in the image (the Dockerfiles update them).
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["docker", "-H", builder.host, "import", "-", stand_in], stdin=tar.stdout, check=True, capture_output=True, timeout=BUILD_TIMEOUT)
    if tar.wait() != 0:
        raise RuntimeError(f"tar of {rootfs} failed")
    shutil.rmtree(rootfs)
    return stand_in


def _wheelhouse(context: Path, into: Path) -> None:
    """Downloads the image's pinned Python distributions (hashes checked) on the host."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--require-hashes",
         "--requirement", str(context / "requirements.txt"), "--dest", str(into)],
        check=True, capture_output=True, timeout=BUILD_TIMEOUT,
    )  # fmt: skip


def build_images(builder: Engine, tags: Mapping[str, str], base: str, log: Path) -> dict[str, str]:
    """Builds each project image into the builder (skipped when an image of that tag is there:
    the tag is a digest of its build context); the image name by key.
    """
    built: dict[str, str] = {}
    for key, context_dir in sorted(BUILT_IMAGES.items()):
        name = local_image(key, tags[key])
        built[key] = name
        if builder.image_present(name):
            continue
        with tempfile.TemporaryDirectory(prefix=f"dpc-build-{key}-") as scratch:
            context = Path(scratch) / "context"
            shutil.copytree(PROJECT_ROOT / context_dir, context, ignore=shutil.ignore_patterns(*BUILD_CACHE_PATTERNS))
            arguments = ["--build-arg", f"BASE_IMAGE={base}"]
            if (context / "requirements.txt").exists():
                _wheelhouse(context, context / "wheels")
                arguments += ["--build-arg", "PIP_NO_INDEX=1"]
            with log.open("ab") as output:
                subprocess.run(
                    ["docker", "-H", builder.host, "build", "--network", "host", *arguments, "--tag", name, str(context)],
                    check=True, stdout=output, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT,
                    env={"PATH": "/usr/local/bin:/usr/bin:/bin", "DOCKER_BUILDKIT": "0", "HOME": scratch},
                )  # fmt: skip
    return built


def vendor_images_missing(builder: Engine, images: Sequence[str]) -> dict[str, str]:
    """The vendor images (not built here) that neither the builder holds nor it can pull: why, by image."""
    missing: dict[str, str] = {}
    for image in sorted(set(images)):
        if image in (Image.POSTGRES, Image.SERVICES) or builder.image_present(image):
            continue
        if error := _pull(builder, image):
            missing[image] = error
    return missing


def image_store(builder: Engine, images: Sequence[str], root: Path) -> Path:
    """A data root holding `images` and nothing else, for the Swarm's engines to start from.

    Loading the images into each node's engine would cost a few GB of writes and minutes per run;
    instead one engine of its own (no network of its own, started and stopped here) loads them
    once, and each node's data root gets hard links to its layers (`seed_engine`): image layers
    are read-only, every container writes to a layer of its own.
    """
    data = root / "data"
    if data.exists():
        shutil.rmtree(data)
    run_dir = Path(tempfile.mkdtemp(prefix="dpc-store-", dir="/run"))
    socket_path = root / "docker.sock"
    log = (root / "dockerd.log").open("ab")
    engine_process = subprocess.Popen(
        ["dockerd", f"--data-root={data}", f"--exec-root={run_dir}", f"--host=unix://{socket_path}", f"--pidfile={root / 'dockerd.pid'}",
         "--bridge=none", "--iptables=false", "--ip-masq=false", "--log-level=warn"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        store = Engine(socket_path, "image-store")
        store.wait_until_responding(ENGINE_START_TIMEOUT)
        for image in sorted(set(images)):
            save = subprocess.Popen(["docker", "-H", builder.host, "save", image], stdout=subprocess.PIPE)
            subprocess.run(["docker", "-H", store.host, "load"], stdin=save.stdout, check=True, capture_output=True, timeout=LOAD_TIMEOUT)
            if save.wait(timeout=LOAD_TIMEOUT) != 0:
                raise RuntimeError(f"docker save {image} failed")
    finally:
        engine_process.terminate()
        engine_process.wait(timeout=ENGINE_START_TIMEOUT)
        log.close()
        unmount_under(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
    return data


def seed_engine(store: Path, data_root: Path) -> None:
    """Gives an engine that has not started yet the store's images, as hard links."""
    data_root.mkdir(parents=True, exist_ok=True)
    for part in ("image", "overlay2"):
        if not (data_root / part).exists():
            subprocess.run(["cp", "-al", str(store / part), str(data_root / part)], check=True, capture_output=True, timeout=LOAD_TIMEOUT)
