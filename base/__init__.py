"""The ground floor: where things are (on a node, on its stick, in the build directory) and the few helpers every
layer uses (templates, file digests). It imports nothing else of ephemeros; every other package may import it."""
