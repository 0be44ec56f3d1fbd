"""Test support shipped with the container package: tiny models and datasets (random weights).

Used by this package's tests, by the local runtime's demo and by other parts' end-to-end tests,
because real Stable Diffusion weights cannot be downloaded where those run.
"""
