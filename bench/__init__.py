"""Measurements (`make bench`): sizes and times, printed and written to build/bench; never asserted."""
