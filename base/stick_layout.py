"""The stick image's geometry and the names of the files on its boot partition."""

from __future__ import annotations

from typing import Final

SECTOR: Final = 512
MIB: Final = 1024 * 1024

# GPT disk: [1 MiB: protective MBR with gptmbr, GPT] [ESP, FAT16] [secrets, ext4] [backup GPT]
ESP_START: Final = 1 * MIB
ESP_SIZE: Final = 8 * MIB
SECRETS_START: Final = ESP_START + ESP_SIZE
SECRETS_SIZE: Final = 4 * MIB
SECRETS_DATA_LIMIT: Final = 3 * MIB  # what its files may hold in all: the rest of the partition is ext4's own
SECRETS_OTHER_FILES: Final = 64 * 1024  # room kept for a server's tokens, CAs and keys beside the add-ons' values
IMAGE_SIZE: Final = SECRETS_START + SECRETS_SIZE + 1 * MIB

ESP_LABEL: Final = "EPHEMEROS"  # FAT volume label, at most 11 characters
ESP_TYPE: Final = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"  # EFI system partition
SECRETS_TYPE: Final = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"  # Linux filesystem data
LEGACY_BIOS_BOOTABLE: Final = "LegacyBIOSBootable"  # the GPT attribute (bit 2) that gptmbr.bin boots from

# Files on the boot partition.
EFI_LOADER: Final = "EFI/BOOT/BOOTX64.EFI"  # iPXE for x86_64 UEFI; reads BOOT_SCRIPT next to it
BOOT_SCRIPT: Final = "autoexec.ipxe"
BIOS_IPXE: Final = "ipxe.lkrn"  # iPXE as a Linux kernel, started by syslinux with BOOT_SCRIPT as its initrd
SYSLINUX_CONFIG: Final = "syslinux.cfg"

# Flatcar's PXE images, under <flatcar.baseUrl>/<version>/.
FLATCAR_KERNEL: Final = "flatcar_production_pxe.vmlinuz"
FLATCAR_INITRD: Final = "flatcar_production_pxe_image.cpio.gz"
