"""WebAssembly backend: a direct binary encoder and the kernels emitted with it."""
