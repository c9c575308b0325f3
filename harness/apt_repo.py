"""A local Debian mirror for a VM that reaches no real one, and a server for it inside a network namespace.

The tree holds only the .debs that apt inside the VM will ask for, and, for each suite the VM's sources name, an
index of just those, signed with the mirror's own key, as a filtered LAN mirror (aptly's, say) publishes one: the
image trusts that key for this mirror only (`sources_list`, `new_mirror_key`), so the VM's apt verifies what it
reads, and it reads a few hundred packages where Debian's full index has 60,000 (which, under TCG, took apt a
minute to fetch and parse). The set is computed the way the VM's apt computes it: apt on this machine, configured
apart from the host's own apt (its sources, settings, lists and cache), resolves the packages against the
image's dpkg status with Recommends, and downloads them, verified by Debian's archive keyring. Trees are cached
with the test assets (harness/asset_cache.py) by the package list, the image's recipe and the dates of the
host's indexes.
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
from pathlib import Path
from urllib.parse import unquote

from harness.asset_cache import CACHE, building
from harness.netns import Network
from harness.processes import stop, write_private

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
HOST_LISTS = Path("/var/lib/apt/lists")
INDEX = "main/binary-amd64/Packages"  # the one index file of each suite, listed in its signed InRelease
MIRROR_KEY_IN_VM = "/usr/share/keyrings/ephemeros-test-mirror.asc"  # the mirror's public key, in the image
MIRROR_SIGNING_KEY = "mirror-signing-key.asc"  # its signing half (secret), in the image's cache directory
LAYOUT = "2"  # part of the cache key: bump when the tree or the way it is computed changes


def suites(codename: str) -> dict[str, str]:
    """The suites the VM uses, each with the archive (the directory under the repository's root) it is in."""
    return {codename: "debian", f"{codename}-updates": "debian", f"{codename}-security": "debian-security"}


def sources_list(base_url: str, codename: str) -> str:
    """The VM's /etc/apt/sources.list for a local repository served at `base_url`, signed by the mirror's key."""
    return "".join(
        f"deb [signed-by={MIRROR_KEY_IN_VM}] {base_url}/{archive} {suite} main\n"
        for suite, archive in suites(codename).items()
    )


def _gpg(home: Path, *args: str) -> str:
    """gpg with its own home, never asking; its output."""
    done = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "", *args],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gpg {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def new_mirror_key(secret: Path, public: Path) -> None:
    """A new signing key for the mirror: its secret half to `secret` (0600, kept with the image), its public half
    to `public` (the image's MIRROR_KEY_IN_VM)."""
    with tempfile.TemporaryDirectory(prefix="ephemeros-gpg-") as home:
        _gpg(Path(home), "--quick-generate-key", "ephemeros test mirror", "ed25519", "sign", "never")
        _gpg(Path(home), "--armor", "--output", str(public), "--export")
        write_private(secret, _gpg(Path(home), "--armor", "--export-secret-keys").encode())


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


def _complete(root: Path) -> bool:
    return (root / "packages.json").is_file()


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

    def in_release(self, suite: str) -> Path:
        """The InRelease of `suite` as `apt-get update` verified and stored it."""
        found = sorted((self.work / "lists").glob(f"*_dists_{suite}_InRelease"))
        if len(found) != 1:
            raise RuntimeError(f"apt-get update left {len(found)} InRelease files for {suite}")
        return found[0]


def _stanzas(packages_file: str) -> list[str]:
    return [stanza for stanza in packages_file.split("\n\n") if stanza.strip()]


def _field(stanza: str, name: str) -> str:
    match = re.search(rf"^{name}: (.+)$", stanza, re.M)
    return match.group(1).strip() if match else ""


def _write_indexes(apt: _Apt, codename: str, tree: Path, debs: Sequence[str], signing_key: Path) -> None:
    """Each suite's index of the .debs the tree holds (Debian's own stanzas, as apt verified them), and its
    InRelease, signed with the mirror's key."""
    held = set(debs)
    with tempfile.TemporaryDirectory(prefix="ephemeros-gpg-") as home:
        _gpg(Path(home), "--import", str(signing_key))
        for suite, archive in suites(codename).items():
            dists = tree / archive / "dists" / suite
            (dists / INDEX).parent.mkdir(parents=True)
            (lists,) = (apt.work / "lists").glob(f"*_dists_{suite}_main_binary-amd64_Packages")
            kept = [s for s in _stanzas(lists.read_text()) if f"{archive}/{_field(s, 'Filename')}" in held]
            index = "".join(f"{stanza.strip()}\n\n" for stanza in kept).encode()
            (dists / INDEX).write_bytes(index)
            debian = apt.in_release(suite).read_text()
            fields = "".join(f"{name}: {_field(debian, name)}\n" for name in ("Origin", "Label", "Suite", "Codename"))
            release = (
                f"{fields}Date: {_field(debian, 'Date')}\nArchitectures: amd64\nComponents: main\n"
                f"SHA256:\n {hashlib.sha256(index).hexdigest()} {len(index)} {INDEX}\n"
            )
            (dists / "Release").write_text(release)
            _gpg(Path(home), "--clearsign", "--digest-algo", "SHA256", "--output", str(dists / "InRelease"),
                 str(dists / "Release"))  # fmt: skip


def _copy_debs(
    apt: _Apt, mirrors: dict[str, str], codename: str, packages: Sequence[str], tree: Path
) -> tuple[list[str], list[str]]:
    """Download what `apt-get install packages` (and a dist-upgrade) needs; place each .deb at its pool path.
    Returns the pool paths, and the names of the packages the install alone would install."""
    commands = [["install", *packages], ["dist-upgrade"]]
    printed = [apt.run("-y", "--print-uris", *command) for command in commands]
    installs = sorted({unquote(name) for name in re.findall(r"^'\S+' ([^_\s]+)_\S+\.deb ", printed[0], re.M)})
    planned = [line for lines in printed for line in lines.splitlines()]
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
    return sorted(placed), installs


def local_apt_repo(
    packages: Sequence[str], *, codename: str, image_key: str, dpkg_status: Path, image_dir: Path
) -> Path:
    """A directory ready to serve as the VM's mirror (see `sources_list`), with what `packages` need on an image of
    `codename` (cached under `image_dir`, its recipe's key `image_key`) whose installed packages are `dpkg_status`."""
    key = repo_key(packages, image_key, host_index_dates(codename))
    done = CACHE / f"apt-repo-{key}"
    if _complete(done):
        return done
    with building(done.name):
        if not _complete(done):  # not built by another process while this one waited
            _build(done, key, packages, codename, dpkg_status, image_dir)
    return done


def installs(tree: Path) -> list[str]:
    """The packages apt (on this machine) planned to install for the tree's package list: the VM must install
    them all (a Recommends the index lacked would be skipped without a word)."""
    names: list[str] = json.loads((tree / "packages.json").read_text())["installs"]
    return names


def _build(done: Path, key: str, packages: Sequence[str], codename: str, dpkg_status: Path, image_dir: Path) -> None:
    mirrors = host_mirrors(codename)
    work = Path(tempfile.mkdtemp(prefix=f".apt-repo-{key}-", dir=CACHE))
    try:
        tree = work / "tree"
        apt = _Apt(work / "apt", mirrors, dpkg_status)
        apt.run("update")
        debs, planned = _copy_debs(apt, mirrors, codename, packages, tree)
        _write_indexes(apt, codename, tree, debs, image_dir / MIRROR_SIGNING_KEY)
        manifest = {"packages": sorted(packages), "image": image_dir.name, "debs": debs, "installs": planned}
        (tree / "packages.json").write_text(json.dumps(manifest, indent=1))
        tree.chmod(0o755)
        shutil.rmtree(done, ignore_errors=True)
        tree.rename(done)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune(done)


def _prune(keep: Path) -> None:
    """Drop cached trees that can serve no more: those for images no longer cached."""
    for old in CACHE.glob("apt-repo-*"):
        manifest = old / "packages.json"
        image = json.loads(manifest.read_text()).get("image") if manifest.is_file() else None
        if old != keep and (not image or not (CACHE / Path(image).name).is_dir()):
            shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class RepoServer:
    url: str  # as the VM reaches it
    log: Path
    root: Path  # the tree it serves

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
        yield RepoServer(url, log, root)
    finally:
        stop(server)
