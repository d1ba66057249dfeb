"""Replication of Takagi et al., "On the conditions of MAML convergence".

Modules, one concept each, from the bottom layer up (a module imports only those below it;
tests/test_layers.py holds the order): ``config`` (the workflow configuration), ``progress``
(progress bars), ``provenance``, ``stability`` (reading stability off a grid), ``theory``
(the paper's conditions and the exact ones), ``data`` (the image datasets), ``tasks`` (task
distributions), ``models`` (networks), ``maml`` (the torch.func engine), ``higher_backend``
(the reference implementation), ``curvature`` and ``curvature_mlp``, ``grid`` (many
(alpha, beta) cells at once), ``audit``, ``experiments``, ``claims``, ``plots``, ``cli``.
"""

__version__ = "0.1.0"
