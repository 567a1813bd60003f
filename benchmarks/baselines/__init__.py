"""Reference servers the benchmarks run next to ours, so every table shows what the design choices buy."""
