"""Boot media: each node's USB stick image (iPXE for UEFI and BIOS, its boot script, its secrets partition)."""
