"""The mallocGame (PROBLEM.md section 9) and an agent that plays it: the ``rl`` solver.

- :mod:`~memplan.solvers.rl.features`: fixed action slots and features of a game state;
- :mod:`~memplan.solvers.rl.instances`: instances (problem + order + baseline scores)
  and the seeded training sampler;
- :mod:`~memplan.solvers.rl.env`: the Gymnasium environment ``memplan/MallocGame-v0``
  (needs gymnasium);
- :mod:`~memplan.solvers.rl.network`: the policy/value network in numpy (inference);
- :mod:`~memplan.solvers.rl.search`: Gumbel tree search on the placement state;
- :mod:`~memplan.solvers.rl.train`: self-play training (needs torch: the ``rl`` extra);
- :mod:`~memplan.solvers.rl.solver`: the ``rl`` solver plug-in.

Playing needs numpy only; nothing here imports torch or gymnasium at import time.
"""

from __future__ import annotations
