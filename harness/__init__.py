"""Real parts for the tests and the benchmarks: the Pulumi engine on a copy of the project, QEMU boots, BIND, the
Ignition tools, a loopback HTTP server, and the stack configurations they use. Not part of the program."""
