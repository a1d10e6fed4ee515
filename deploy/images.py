"""The stack's images: the debian:bookworm-slim base (pulled, or made with debootstrap and
`docker import` where no registry answers), and every image of compose.yaml tagged with the
hash of its inputs: reused when that tag exists, else built; old hash tags pruned.

Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.engine import Say, engine_answers, run, say

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "debian:bookworm-slim"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
HASH_LABEL = "org.imagefleet.inputs"

_SLIM_DPKG = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""
_CLEAN = (
    '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb'
    ' /var/cache/apt/*.bin || true"'
)
_APT_CLEAN = (
    f"DPkg::Post-Invoke {{ {_CLEAN}; }};\nAPT::Update::Post-Invoke {{ {_CLEAN}; }};\n"
    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n'
)
_SOURCES = """\
Types: deb
URIs: {mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def image_exists(ref: str) -> bool:
    return run(["docker", "image", "inspect", ref], check=False).returncode == 0


def ensure_base(sayer: Say = say) -> str:
    """debian:bookworm-slim: present, pulled, or (no registry answers) made with debootstrap
    from the Debian mirror and imported under the same tag. Says which."""
    if not engine_answers():
        raise RuntimeError("no Docker engine answers (`make stack` starts one)")
    if image_exists(BASE_IMAGE):
        return "present"
    pull = run(["docker", "pull", BASE_IMAGE], check=False, timeout=600)
    if pull.returncode == 0:
        sayer(f"pulled {BASE_IMAGE}")
        return "pulled"
    sayer(
        f"{BASE_IMAGE} cannot be pulled ({pull.stderr.strip().splitlines()[-1:]});"
        f" building it with debootstrap from {DEBIAN_MIRROR}"
    )
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="imagefleet-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        boot = run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR],
            check=False,
            timeout=1200,
        )
        if boot.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{boot.stdout[-2000:]}{boot.stderr[-2000:]}")
        _slim(rootfs)
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
        )
        imported = run(
            ["docker", "import", "--change", 'CMD ["bash"]', "-", BASE_IMAGE],
            check=False,
            stdin=tar.stdout,
        )
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise RuntimeError(f"docker import failed: {imported.stderr}")
    sayer(f"built {BASE_IMAGE} with debootstrap in {time.monotonic() - started:.0f} s")
    return "debootstrap"


def _slim(rootfs: Path) -> None:
    """What Debian's own slim image does: no docs, man pages or translations, no apt caches
    or package lists, and the deb822 sources with security updates."""
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker-slim").write_text(_SLIM_DPKG)
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(_APT_CLEAN)
    (rootfs / "etc/apt/apt.conf.d/docker-no-languages").write_text('Acquire::Languages "none";\n')
    (rootfs / "etc/apt/apt.conf.d/docker-gzip-indexes").write_text(
        'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n'
    )
    security = DEBIAN_MIRROR.rstrip("/") + "-security"
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(
        _SOURCES.format(mirror=DEBIAN_MIRROR, security=security)
    )
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    for pattern in (
        "usr/share/doc/*/*",
        "usr/share/man/*",
        "usr/share/info/*",
        "usr/share/locale/*",
        "usr/share/lintian/*",
        "var/cache/apt/archives/*.deb",
        "var/cache/apt/*.bin",
        "var/lib/apt/lists/*",
        "var/log/*.log",
        "var/log/apt/*",
    ):
        for path in rootfs.glob(pattern):
            if path.name in ("copyright", "locale.alias") or path.name == "partial":
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


# --- the images --------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    repo: str  # imagefleet, imagefleet-redis, ...
    dockerfile: str  # relative to ROOT
    context: str  # relative to ROOT
    env: str  # the compose.yaml variable naming it

    def inputs_hash(self) -> str:
        """A hash of the Dockerfile and of every file it copies from its context (the CA
        bundle of deploy/ca aside: it only lets pip through, whatever it holds)."""
        digest = hashlib.sha256()
        dockerfile = ROOT / self.dockerfile
        digest.update(dockerfile.read_bytes())
        context = ROOT / self.context
        sources: set[str] = set()
        for line in dockerfile.read_text().splitlines():
            match = re.match(r"\s*COPY\s+(?!--from)(.+)", line)
            if match:
                sources.update(match.group(1).split()[:-1])
        for source in sorted(sources):
            if source.rstrip("/") in ("deploy/ca", "ca"):
                continue
            path = context / source
            files = (
                [path]
                if path.is_file()
                else sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and "__pycache__" not in p.parts
                    and p.suffix != ".pyc"
                    and p.name != "results.json"
                )
            )
            for file in files:
                digest.update(str(file.relative_to(context)).encode() + b"\0")
                digest.update(file.read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    def ref(self) -> str:
        return f"{self.repo}:{self.inputs_hash()}"


IMAGES = (
    Image("imagefleet", "Dockerfile", ".", "FLEET_IMAGE"),
    Image("imagefleet-redis", "deploy/redis.Dockerfile", "deploy", "FLEET_REDIS_IMAGE"),
    Image("imagefleet-seaweedfs", "deploy/seaweedfs.Dockerfile", "deploy", "FLEET_SEAWEEDFS_IMAGE"),
    Image("imagefleet-haproxy", "deploy/haproxy.Dockerfile", "deploy", "FLEET_LB_IMAGE"),
    Image("imagefleet-flower", "deploy/flower.Dockerfile", "deploy", "FLEET_FLOWER_IMAGE"),
)


def _ca_for_builds() -> None:
    """The host's CA bundle where pip inside a build can use it (only the build stages read
    it; git-ignored). A network that re-signs TLS has its CA there; elsewhere it is harmless."""
    for target in (ROOT / "deploy/ca/ca-certificates.crt",):
        if HOST_CA.is_file():
            data = HOST_CA.read_bytes()
            if not target.is_file() or target.read_bytes() != data:
                target.write_bytes(data)
        elif not target.exists():
            target.write_bytes(b"")


@dataclass
class BuildReport:
    built: dict[str, float]  # image ref -> seconds
    reused: list[str]

    def line(self) -> str:
        parts = [f"built {ref} in {secs:.0f} s" for ref, secs in self.built.items()]
        if self.reused:
            parts.append(f"reused {len(self.reused)} image(s) whose inputs are unchanged")
        return "; ".join(parts)


def ensure_images(tag_latest: bool, sayer: Say = say) -> tuple[dict[str, str], BuildReport]:
    """Every image of the stack, tagged with the hash of its inputs (and :latest when asked):
    reused when that tag exists, else built (`docker build`, host network). The compose
    variables naming them, and what was built."""
    ensure_base(sayer)
    _ca_for_builds()
    env, report = {}, BuildReport({}, [])
    for image in IMAGES:
        ref, digest = image.ref(), image.inputs_hash()
        if image_exists(ref):
            report.reused.append(ref)
        else:
            sayer(f"building {ref} from {image.dockerfile}")
            started = time.monotonic()
            result = run(
                [
                    "docker",
                    "build",
                    "--force-rm",
                    "--network",
                    "host",
                    "--label",
                    f"{HASH_LABEL}={digest}",
                    "-t",
                    ref,
                    "-f",
                    str(ROOT / image.dockerfile),
                    str(ROOT / image.context),
                ],
                check=False,
                capture=True,
                env={**os.environ, "DOCKER_BUILDKIT": "0"},
            )
            if result.returncode != 0:
                raise RuntimeError(
                    f"building {ref} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
                )
            report.built[ref] = time.monotonic() - started
            sayer(f"built {ref} in {report.built[ref]:.0f} s")
        if tag_latest:
            run(["docker", "tag", ref, f"{image.repo}:latest"])
        env[image.env] = ref
    if report.built:
        prune_old_images()
    return env, report


def prune_old_images(keep: int = 3) -> None:
    """Untag all but the newest `keep` input-hash tags of each image (a test on a CI machine
    builds one per code change); an image a container still uses stays."""
    for image in IMAGES:
        out = run(
            ["docker", "image", "ls", image.repo, "--format", "{{.Tag}}\t{{.CreatedAt}}"],
            check=False,
        ).stdout
        tags = sorted(
            (
                line.split("\t")
                for line in out.splitlines()
                if re.fullmatch(r"[0-9a-f]{16}\t.*", line)
            ),
            key=lambda tag_created: tag_created[1],
            reverse=True,
        )
        for tag, _ in tags[keep:]:
            run(["docker", "rmi", f"{image.repo}:{tag}"], check=False)


def image_size(ref: str) -> int:
    return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", ref]).stdout)
