"""A local Debian mirror for a VM that reaches no real one, and a server for it inside a network namespace.

The tree holds the exact signed indexes (InRelease, and the Packages and Translation-en files apt fetches, also
at their by-hash paths) of the suites the VM's sources name, downloaded from this machine's Debian mirror so
that the VM's own debian-archive-keyring verifies them, and only the .debs that apt inside the VM will ask for.
That set is computed the way the VM's apt computes it: apt on this machine, configured apart from the host's
own apt (its sources, settings, lists and cache), resolves the packages against the image's dpkg status with
Recommends, and downloads them. Trees are cached with the test assets (harness/asset_cache.py) by the package list,
the image's recipe and the dates of the host's indexes, and rebuilt when a cached InRelease nears its Valid-Until.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote

from harness.asset_cache import CACHE, building
from harness.netns import Network
from harness.processes import stop

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
HOST_LISTS = Path("/var/lib/apt/lists")
# The index files apt fetches for `main` on amd64 (with a C.UTF-8 locale it wants English translations), and
# the compressions it tries, in its default order.
INDEXES = ("main/binary-amd64/Packages", "main/i18n/Translation-en")
COMPRESSIONS = ("xz", "bz2", "lzma", "gz", "lz4", "zst")
LAYOUT = "1"  # part of the cache key: bump when the tree or the way it is computed changes
VALID_MARGIN = 2 * 3600  # rebuild a cached tree whose InRelease expires within this many seconds


def suites(codename: str) -> dict[str, str]:
    """The suites the VM uses, each with the archive (the directory under the repository's root) it is in."""
    return {codename: "debian", f"{codename}-updates": "debian", f"{codename}-security": "debian-security"}


def sources_list(base_url: str, codename: str) -> str:
    """The VM's /etc/apt/sources.list for a local repository served at `base_url`."""
    return "".join(f"deb {base_url}/{archive} {suite} main\n" for suite, archive in suites(codename).items())


def host_mirrors(codename: str) -> dict[str, str]:
    """The base URL this machine's apt uses for each of the VM's suites, from `apt-cache policy`."""
    policy = subprocess.run(["apt-cache", "policy"], capture_output=True, text=True, check=True).stdout
    found = dict(
        (suite, base)
        for base, suite in re.findall(r"^\s*\d+\s+(https?://\S+?)/?\s+(\S+)/main amd64 Packages$", policy, re.M)
    )
    mirrors = {suite: found[suite] for suite in suites(codename) if suite in found}
    missing = sorted(set(suites(codename)) - set(mirrors))
    if missing:
        raise RuntimeError(
            f"this machine's apt has no Debian source for {', '.join(missing)} main amd64: add it to its sources "
            "and run `apt-get update`"
        )
    return mirrors


def host_index_dates(codename: str) -> dict[str, str]:
    """The Date of each suite's InRelease in the host's apt lists (no network): part of the cache key."""
    dates = {}
    for suite in suites(codename):
        found = sorted(HOST_LISTS.glob(f"*_dists_{suite}_InRelease"))
        if not found:
            raise RuntimeError(f"no {suite} InRelease in {HOST_LISTS}: run `apt-get update`")
        match = re.search(r"^Date: (.+)$", found[0].read_text(errors="replace"), re.M)
        dates[suite] = match.group(1) if match else ""
    return dates


def repo_key(packages: Sequence[str], image_key: str, dates: dict[str, str]) -> str:
    """The cache key of a repository tree."""
    recipe = {"layout": LAYOUT, "packages": sorted(set(packages)), "image": image_key, "dates": dates}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _release_hashes(in_release: str) -> dict[str, str]:
    """Path -> sha256 from the SHA256 section of a Release or InRelease file."""
    section = re.search(r"^SHA256:\n((?: .*\n)+)", in_release, re.M)
    if not section:
        raise RuntimeError("an InRelease without a SHA256 section")
    return {path: digest for digest, _, path in (line.split() for line in section.group(1).splitlines())}


def _valid_until(in_release: str) -> float | None:
    match = re.search(r"^Valid-Until: (.+)$", in_release, re.M)
    return parsedate_to_datetime(match.group(1)).timestamp() if match else None


def _fresh(root: Path) -> bool:
    """Whether a cached tree is complete and none of its InRelease files is (nearly) expired."""
    if not (root / "packages.json").is_file():
        return False
    for in_release in root.glob("*/dists/*/InRelease"):
        until = _valid_until(in_release.read_text(errors="replace"))
        if until is not None and until < time.time() + VALID_MARGIN:
            return False
    return True


class _Apt:
    """apt on this machine, configured apart from the host's: its own sources, state, cache and settings."""

    def __init__(self, work: Path, mirrors: dict[str, str], dpkg_status: Path) -> None:
        self.work = work
        empty = work / "empty"
        for directory in (empty, work / "lists/partial", work / "cache/archives/partial", work / "log"):
            directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dpkg_status, work / "status")
        (work / "sources.list").write_text(
            "".join(f"deb [signed-by={KEYRING}] {base} {suite} main\n" for suite, base in mirrors.items())
        )
        settings = {
            "Dir::Etc::main": "/dev/null",
            "Dir::Etc::parts": empty,
            "Dir::Etc::sourcelist": work / "sources.list",
            "Dir::Etc::sourceparts": empty,
            "Dir::Etc::preferences": "/dev/null",
            "Dir::Etc::preferencesparts": empty,
            "Dir::Etc::trustedparts": empty,
            "Dir::State": work,
            "Dir::State::lists": work / "lists",
            "Dir::State::status": work / "status",
            "Dir::Cache": work / "cache",
            "Dir::Log": work / "log",
            "APT::Architecture": "amd64",
            "APT::Install-Recommends": "true",
            "APT::Install-Suggests": "false",
            "APT::Sandbox::User": "root",
        }
        lines = [f'{name} "{value}";' for name, value in settings.items()]
        (work / "apt.conf").write_text("\n".join([*lines, 'APT::Architectures { "amd64"; };']) + "\n")
        self.env = {**os.environ, "APT_CONFIG": str(work / "apt.conf"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        self.env.pop("LANGUAGE", None)

    def run(self, *args: str) -> str:
        done = subprocess.run(["apt-get", "-q", *args], capture_output=True, text=True, env=self.env)
        if done.returncode != 0:
            raise RuntimeError(f"apt-get {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def download_file(self, url: str, target: Path, sha256: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["/usr/lib/apt/apt-helper", "download-file", url, str(target)], capture_output=True, text=True, env=self.env
        )
        if done.returncode != 0:
            raise RuntimeError(f"cannot download {url}:\n{done.stdout}{done.stderr}")
        if hashlib.sha256(target.read_bytes()).hexdigest() != sha256:
            raise RuntimeError(f"{url} does not match the sha256 its signed InRelease gives")

    def in_release(self, suite: str) -> Path:
        """The InRelease of `suite` as `apt-get update` verified and stored it."""
        found = sorted((self.work / "lists").glob(f"*_dists_{suite}_InRelease"))
        if len(found) != 1:
            raise RuntimeError(f"apt-get update left {len(found)} InRelease files for {suite}")
        return found[0]


def _copy_indexes(apt: _Apt, mirrors: dict[str, str], codename: str, tree: Path) -> None:
    """Each suite's InRelease as apt verified it, and the index files apt in the VM fetches, by name and by hash."""
    for suite, archive in suites(codename).items():
        base, dists = mirrors[suite], tree / archive / "dists" / suite
        dists.mkdir(parents=True)
        in_release = apt.in_release(suite)
        shutil.copyfile(in_release, dists / "InRelease")
        hashes = _release_hashes(in_release.read_text())
        for index in INDEXES:
            path = next((f"{index}.{c}" for c in COMPRESSIONS if f"{index}.{c}" in hashes), index)
            if path not in hashes:
                raise RuntimeError(f"{suite}'s InRelease lists no {index}")
            target = dists / path
            apt.download_file(f"{base}/dists/{suite}/{path}", target, hashes[path])
            by_hash = target.parent / "by-hash/SHA256" / hashes[path]
            by_hash.parent.mkdir(parents=True, exist_ok=True)
            os.link(target, by_hash)


def _copy_debs(apt: _Apt, mirrors: dict[str, str], codename: str, packages: Sequence[str], tree: Path) -> list[str]:
    """Download what `apt-get install packages` (and a dist-upgrade) needs; place each .deb at its pool path."""
    commands = [["install", *packages], ["dist-upgrade"]]
    planned = [line for command in commands for line in apt.run("-y", "--print-uris", *command).splitlines()]
    for command in commands:
        apt.run("-y", "--download-only", *command)
    placed: set[str] = set()
    for line in planned:
        match = re.match(r"^'(\S+)' (\S+) \d+", line)
        if not match:
            continue
        url, filename = match.groups()
        # Under each archive whose base the URL starts with: one mirror may serve several of them.
        homes = {(suites(codename)[s], b) for s, b in mirrors.items() if url.startswith(f"{b}/")}
        if not homes:
            raise RuntimeError(f"apt planned {url}, from none of the VM's suites")
        for archive, base in homes:
            pool_path = f"{archive}/{unquote(url.removeprefix(f'{base}/'))}"
            (tree / pool_path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(apt.work / "cache/archives" / filename, tree / pool_path)
            placed.add(pool_path)
    return sorted(placed)


def local_apt_repo(
    packages: Sequence[str], *, codename: str, image_key: str, dpkg_status: Path, image_dir: Path
) -> Path:
    """A directory ready to serve as the VM's mirror (see `sources_list`), with what `packages` need on an image of
    `codename` (cached under `image_dir`, its recipe's key `image_key`) whose installed packages are `dpkg_status`."""
    key = repo_key(packages, image_key, host_index_dates(codename))
    done = CACHE / f"apt-repo-{key}"
    if _fresh(done):
        return done
    with building(done.name):
        if not _fresh(done):  # not built by another process while this one waited
            _build(done, key, packages, codename, dpkg_status, image_dir)
    return done


def _build(done: Path, key: str, packages: Sequence[str], codename: str, dpkg_status: Path, image_dir: Path) -> None:
    mirrors = host_mirrors(codename)
    work = Path(tempfile.mkdtemp(prefix=f".apt-repo-{key}-", dir=CACHE))
    try:
        tree = work / "tree"
        apt = _Apt(work / "apt", mirrors, dpkg_status)
        apt.run("update")
        _copy_indexes(apt, mirrors, codename, tree)
        debs = _copy_debs(apt, mirrors, codename, packages, tree)
        manifest = {"packages": sorted(packages), "image": image_dir.name, "debs": debs}
        (tree / "packages.json").write_text(json.dumps(manifest, indent=1))
        tree.chmod(0o755)
        shutil.rmtree(done, ignore_errors=True)
        tree.rename(done)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune(done)


def _prune(keep: Path) -> None:
    """Drop cached trees that can serve no more: expired ones, and those for images no longer cached."""
    for old in CACHE.glob("apt-repo-*"):
        manifest = old / "packages.json"
        image = json.loads(manifest.read_text()).get("image") if manifest.is_file() else None
        if old != keep and (not _fresh(old) or not image or not (CACHE / Path(image).name).is_dir()):
            shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class RepoServer:
    url: str  # as the VM reaches it
    log: Path

    def missing(self) -> list[str]:
        """Paths the server was asked for and did not have (apt would have failed on them)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return sorted(set(re.findall(r'"GET (\S+) HTTP/[\d.]+" 404', text)))


@contextmanager
def serve_repo(root: Path, network: Network, workdir: Path, port: int = 80) -> Iterator[RepoServer]:
    """Serve `root` over HTTP on the namespace's bridge address."""
    log = workdir / "apt-repo.log"
    with log.open("w") as output:
        server = network.popen(
            [sys.executable, "-m", "http.server", "--bind", network.gateway, "--directory", str(root), str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        probe = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()"
        deadline = time.monotonic() + 15
        while network.run([sys.executable, "-c", probe, network.gateway, str(port)]).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the apt repository server did not start:\n{log.read_text()}")
            time.sleep(0.2)
        url = f"http://{network.gateway}" + ("" if port == 80 else f":{port}")
        yield RepoServer(url, log)
    finally:
        stop(server)
