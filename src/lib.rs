//! The workspace root package: it owns the end-to-end tests (`tests/`) and benchmarks (`benches/`).
