"""jaxdd: dataset distillation in JAX/Flax.

Every method is a parameterization (what is stored, and how it decodes to images and
labels) crossed with an objective (what the decoded images must match) and scored by an
evaluation protocol. See docs/design.md for the shape of the code.
"""

__version__ = "0.1.0"
