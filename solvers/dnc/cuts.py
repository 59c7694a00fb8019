"""Where to cut an order into parts: at narrow places, where few live bytes cross.

Under an order with no spilling, a tensor *crosses* the cut before step ``c`` when it
is live at both steps ``c - 1`` and ``c``. The crossing bytes are what a boundary state
carries; the fewer they are, the less a fixed boundary constrains the parts on either
side (in a NAS network, the narrowest places are the cell boundaries, where only the
two previous cells' outputs cross; :func:`memplan.cut.crossing_bytes` counts them).
The cuts are chosen by a dynamic programme that
minimises the total crossing bytes with every part between half and one and a half
times the target size::

    live bytes │   ▁▃▅▇▅▃▁     ▁▃▇█▇▃▁     ▁▃▅▇▅▃▁
               └──────────┬───────────┬────────────► step
                          cut         cut            (local minima of the crossing bytes)
"""

from __future__ import annotations

from collections.abc import Sequence


def choose_cuts(crossing: Sequence[int], part_ops: int) -> list[int]:
    """Cut steps (strictly inside ``0 .. n``) splitting ``n`` steps into parts of about
    ``part_ops`` steps (between half and one and a half times it) with the least total
    crossing bytes. One part (no cut) when ``n`` is at most ``1.5 * part_ops``."""
    n = len(crossing) - 1
    low, high = max(1, part_ops // 2), max(1, part_ops + part_ops // 2)
    if n <= high:
        return []
    inf = float("inf")
    cost = [inf] * (n + 1)  # least total crossing of cuts up to a cut at step c
    back = [-1] * (n + 1)
    cost[0] = 0.0
    for c in range(1, n + 1):
        here = 0 if c == n else int(crossing[c])
        for previous in range(max(0, c - high), c - low + 1):
            if cost[previous] + here < cost[c]:
                cost[c] = cost[previous] + here
                back[c] = previous
    if cost[n] == inf:  # no tiling fits the bounds exactly: fall back to even parts
        count = -(-n // part_ops)
        return [round(i * n / count) for i in range(1, count)]
    cuts = []
    c = back[n]
    while c > 0:
        cuts.append(c)
        c = back[c]
    return sorted(cuts)
