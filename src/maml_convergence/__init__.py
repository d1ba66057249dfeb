"""Replication of Takagi et al., "On the conditions of MAML convergence".

Modules, one concept each: ``tasks`` (task distributions), ``models`` (networks),
``maml`` (the torch.func engine), ``grid`` (many (alpha, beta) cells at once),
``higher_backend`` (the reference implementation), ``theory`` (the paper's
conditions), ``config``, ``claims``, ``plots`` and ``provenance``.
"""

__version__ = "0.1.0"
