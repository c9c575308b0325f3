"""Floor 2, boot media: each node's USB stick (pure: the iPXE boot script, the secrets partition's files; checks of
the boot programs; the image builder; the device writer, which refuses any device it could hurt)."""
