"""The mallocGame (PROBLEM.md section 9) and an agent that plays it: the ``rl`` solver.

- :mod:`~memplan.solvers.rl.features`: fixed action slots and features of a game state;
- :mod:`~memplan.solvers.rl.instances`: instances (problem + order + baseline scores);
- :mod:`~memplan.solvers.rl.reference`: the default policy (replay a reference plan);
- :mod:`~memplan.solvers.rl.render`: the memory map of a game so far (text, RGB);
- :mod:`~memplan.solvers.rl.network`: the policy/value network in numpy (inference);
- :mod:`~memplan.solvers.rl.search`: Gumbel tree search on the placement state;
- :mod:`~memplan.solvers.rl.rollout`: fortified rollout passes from a reference plan;
- :mod:`~memplan.solvers.rl.orders`: the orders the solver plays on, and their references;
- :mod:`~memplan.solvers.rl.play`: the games on one order, and why they stopped;
- :mod:`~memplan.solvers.rl.solver`: the ``rl`` solver plug-in (options, solve, bounds).

Playing needs numpy only; nothing here imports torch or gymnasium. The instance sampler,
the Gymnasium environment and training are in :mod:`memplan.rl`.
"""

from __future__ import annotations
