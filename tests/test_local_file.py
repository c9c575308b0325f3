"""LocalFile and IgnitionFile: files the program writes (the served programs, configs and boot scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from base.hostfiles import sha256_file
from providers.ignition_file import IgnitionFileProvider
from providers.local_file import LocalFileProvider


def outs(result: Any) -> dict[str, Any]:
    return dict(result.outs)


def program(path: Path, mode: int = 0o755) -> Path:
    path.write_bytes(b"\x7fELF a program nodes download")
    path.chmod(mode)
    return path


def test_a_served_program_shares_the_bytes_of_its_source(tmp_path: Path) -> None:
    """No stack keeps its own copy of a program it serves: its file is a hard link to the one `make` built."""
    source = program(tmp_path / "ephemeros-dnsupdate")
    props = {"path": str(tmp_path / "served/bin/ephemeros-dnsupdate"), "mode": 0o755}
    props |= {"source": str(source), "sourceSha256": sha256_file(source)}
    made = outs(LocalFileProvider().create(props))
    served = Path(made["path"])
    assert served.stat().st_ino == source.stat().st_ino
    assert made["sha256"] == sha256_file(source)
    assert outs(LocalFileProvider().read(made["path"], made))["intact"] is True
    LocalFileProvider().delete(made["path"], made)
    assert not served.exists()
    assert source.read_bytes() == b"\x7fELF a program nodes download"  # deleting the link leaves the source


def test_a_source_of_another_mode_is_copied(tmp_path: Path) -> None:
    source = program(tmp_path / "tool", mode=0o700)
    props = {"path": str(tmp_path / "served/tool"), "mode": 0o755}
    props |= {"source": str(source), "sourceSha256": sha256_file(source)}
    made = outs(LocalFileProvider().create(props))
    served = Path(made["path"])
    assert served.stat().st_ino != source.stat().st_ino
    assert served.stat().st_mode & 0o7777 == 0o755
    assert served.read_bytes() == source.read_bytes()


def test_refresh_notices_a_file_edited_by_hand(tmp_path: Path) -> None:
    props = {"path": str(tmp_path / "node0.ipxe"), "mode": 0o644, "content": "#!ipxe\n"}
    made = outs(LocalFileProvider().create(props))
    Path(made["path"]).write_text("#!ipxe\nshell\n")
    assert outs(LocalFileProvider().read(made["path"], made))["intact"] is False
    Path(made["path"]).unlink()
    assert LocalFileProvider().read(made["path"], made).id is None


def test_a_nodes_served_files_live_and_go_together(tmp_path: Path) -> None:
    """The Ignition config and the boot script beside it: written together, each checked by refresh, both removed."""
    props = {
        "path": str(tmp_path / "node0.ign"),
        "mode": 0o644,
        "config": {"users": {}, "files": {}, "links": {}, "units": {}},
        "bootScript": "#!ipxe\nboot\n",
        "bootScriptPath": str(tmp_path / "node0.ipxe"),
    }
    made = outs(IgnitionFileProvider().create(props))
    script = Path(made["bootScriptPath"])
    assert script.read_text() == "#!ipxe\nboot\n"
    assert script.stat().st_mode & 0o7777 == 0o644
    assert outs(IgnitionFileProvider().read(made["path"], made))["intact"] is True
    script.write_text("#!ipxe\nshell\n")
    assert outs(IgnitionFileProvider().read(made["path"], made))["intact"] is False
    IgnitionFileProvider().delete(made["path"], made)
    assert not script.exists()
    assert not (tmp_path / "node0.ign").exists()


def test_a_config_made_before_boot_scripts_is_updated_in_place_not_replaced(tmp_path: Path) -> None:
    """State from before served boot scripts has no bootScriptPath: gaining one updates the resource in place. A
    replacement would make the new resource at the same path, then delete the old one, and with it the new file."""
    config: dict[str, dict[str, Any]] = {"users": {}, "files": {}, "links": {}, "units": {}}
    old = {"path": str(tmp_path / "node0.ign"), "mode": 0o644, "config": config}
    made = outs(IgnitionFileProvider().create(old))
    new = {**old, "bootScript": "#!ipxe\nboot\n", "bootScriptPath": str(tmp_path / "node0.ipxe")}
    change = IgnitionFileProvider().diff(made["path"], made, new)
    assert change.changes
    assert not change.replaces
    updated = outs(IgnitionFileProvider().update(made["path"], made, new))
    assert (tmp_path / "node0.ign").is_file()
    assert (tmp_path / "node0.ipxe").read_text() == "#!ipxe\nboot\n"
    moved = {**new, "bootScriptPath": str(tmp_path / "scripts/node0.ipxe")}
    IgnitionFileProvider().update(updated["path"], updated, moved)
    assert not (tmp_path / "node0.ipxe").exists()
    assert (tmp_path / "scripts/node0.ipxe").is_file()
