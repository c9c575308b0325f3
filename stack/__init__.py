"""Floor 5, with __main__.py: the running Pulumi stack. Its configuration, read from the engine and validated
(config.py), and the pre-flight checks of the machine that runs Pulumi (preflight.py): both fail before any
resource is declared, in one block naming each key."""
