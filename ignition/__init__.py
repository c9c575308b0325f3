"""Floor 2, rendering: a node's public Ignition config (render.py) from the settings, with its systemd units,
scripts and network files as templates (templates/). Pure: no Pulumi, and no secret is an input."""
