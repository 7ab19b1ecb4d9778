"""Command-line entry points (thin wrappers over the library): gleam-data, gleam-train,
gleam-eval, gleam-recon (gleam-build lives in gleam_core._build)."""
