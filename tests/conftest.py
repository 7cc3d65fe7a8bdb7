import jax

# Tests check exactness in float64; float32 tests ask for float32 explicitly.
jax.config.update("jax_enable_x64", True)
