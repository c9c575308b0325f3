"""Floor 3, providers: Pulumi dynamic providers, one resource kind per module, each with one typed props class
(props.py holds the base, the diff rule and the error type). They need only the engine and Python: no plugin."""
