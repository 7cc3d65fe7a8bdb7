"""Benchmarks and studies: presets (`./dev.sh bench cpu|gpu|engine|samplers`), the model suite, and studies by name."""
