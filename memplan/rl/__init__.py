"""Training tools of the mallocGame agent, above the solvers (they read workloads, write files).

- :mod:`~memplan.rl.sampler`: seeded training instances (random DAGs, catalog workloads);
- :mod:`~memplan.rl.env`: the Gymnasium environment ``memplan/MallocGame-v0`` (gymnasium);
- :mod:`~memplan.rl.train`: self-play training (torch: ``pip install 'memplan[rl]'``);
- :mod:`~memplan.rl.evaluate`: the same held-out games with and without the network at an
  equal budget (numpy only).

The game itself, the network, the search and the ``rl`` solver are in
:mod:`memplan.solvers.rl`, which needs only the core and numpy.
"""

from __future__ import annotations
