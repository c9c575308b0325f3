"""Build the tests' assets ahead of the tests (`make setup-test` runs this beside the Go builds): the Debian VM
image, the local apt repository of the datastore VM's packages, the boot kernel and initrd, and the whole node's
Flatcar and k3s stand-ins. Each is built once per recipe into the shared cache (harness/asset_cache.py); a second
run only finds them.

    python -m harness.build_assets
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from harness import apt_repo, boot_assets, datastore_world, debian_vm, flatcar_standin, k3s_standin


def _datastore_repo() -> Path:
    image = debian_vm.debian_image()
    return apt_repo.local_apt_repo(
        datastore_world.PACKAGES,
        codename=image.recipe.suite,
        image_key=image.recipe.key,
        dpkg_status=image.dpkg_status,
        image_dir=image.disk_template.parent,
    )


STEPS: dict[str, Callable[[], object]] = {
    "the Debian VM image": debian_vm.debian_image,
    "the datastore VM's apt repository": _datastore_repo,
    "the boot kernel and initrd": boot_assets.boot_assets,
    "the Flatcar stand-in": flatcar_standin.flatcar_standin,
    "the k3s stand-in": k3s_standin.k3s_standin,
}


def main() -> None:
    for name, step in STEPS.items():
        began = time.monotonic()
        step()
        print(f"test assets: {name} ready ({time.monotonic() - began:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
