"""Floor 2, rendering: the datastore VM's cloud-init user data (a #cloud-config document, render.py) from the
settings, with PostgreSQL's configuration, the setup SQL, the dump script and its units as templates
(templates/), and PostgreSQL's SCRAM password verifiers (scram.py). Pure: no Pulumi, no I/O."""
