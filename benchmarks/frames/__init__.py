"""Configs for the C reference load generator (../shared/bench/loadgen.c) in its `frames` mode."""
