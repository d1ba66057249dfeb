"""Replication of Takagi et al., "On the conditions of MAML convergence".

Modules, one concept each, from the bottom layer up (a module imports only those below it;
tests/test_layers.py holds the order and that this list names every module): ``problems`` (the table of
problems), ``config`` (the workflow configuration), ``figures`` (the table of figures), ``progress`` (progress
bars), ``provenance`` (what produced a result, and atomic writing), ``captions`` (a figure's caption, from its
notebook), ``checkpoint`` (resume files),
``source_data`` (the tables beside each figure),
``stability`` (reading stability off a grid), ``theory`` (the paper's conditions and the exact
ones), ``data`` (the image datasets), ``tasks`` (task distributions), ``task_sources`` (a user's
tasks as a sampler), ``models`` (networks), ``maml`` (the torch.func engine), ``higher_backend`` (the
reference implementation),
``curvature`` and ``curvature_mlp``, ``sharpness`` (top Hessian eigenvalues, matrix-free),
``grid`` (many (alpha, beta) cells at once), ``projection`` (an image grid's time, said before it runs),
``guideline`` (``suggest``: a package, one module per phase), ``audit``,
``experiments``, ``paper_grid`` (the paper-scale Fig. 4b, accumulated from chunks), ``claims`` (the verdicts:
a package, one module per family of claims), ``reproduction`` (a run against the committed reference),
``plots``, ``step`` (a command's run: its config, device, clock, resume file and provenance), ``steps`` (the
workflow's steps), ``user_commands`` (what a user runs), ``cli`` (the command line, dispatching to them).
"""

__version__ = "0.1.0"
