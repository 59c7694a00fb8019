"""Seeded random DAGs for solver tests: network-like ones, and tiny ones for brute force.

:func:`random_dag`: each op reads one to three earlier tensors (mostly recent ones,
sometimes a long skip), sometimes a weight, and writes one or (rarely) two activations.
Sizes are random and often not multiples of 64, so alignment matters. Some tensors are
graph outputs (including ones read later), some outputs are never read, and graph
inputs may be read late (forcing a reload when capacity is short).

:func:`tiny_spill_graph`: 4 to 7 ops with KiB-sized tensors and long skips, small enough
for the exhaustive search of :mod:`memplan.testing.bruteforce` at a 1 KiB alignment.
"""

from __future__ import annotations

import random

from memplan.ir import Graph, GraphBuilder, TensorId, TensorKind


def random_dag(
    seed: int,
    n_ops: int = 20,
    *,
    max_size_bytes: int = 16384,
    weight_prob: float = 0.5,
    multi_output_prob: float = 0.15,
) -> Graph:
    """Return a random verified graph with ``n_ops`` ops (same seed, same graph).

    Args:
        seed: random seed.
        n_ops: number of ops (>= 1).
        max_size_bytes: largest tensor size in bytes.
        weight_prob: probability that an op reads a weight.
        multi_output_prob: probability that an op writes two activations.
    """
    rng = random.Random(seed)
    b = GraphBuilder(f"random-{seed}-{n_ops}")

    def size() -> int:
        return rng.randint(1, max_size_bytes // 64) * 64 - rng.choice((0, 0, 17, 40))

    inputs = [b.tensor(f"in{i}", size(), TensorKind.INPUT) for i in range(rng.randint(1, 2))]
    available: list[TensorId] = [inputs[0]]
    unread: set[TensorId] = set()
    late_input = inputs[1] if len(inputs) > 1 else None
    late_at = rng.randrange(n_ops) if late_input is not None else -1
    for i in range(n_ops):
        fan_in = min(len(available), rng.choice((1, 1, 1, 2, 2, 3)))
        chosen: list[TensorId] = []
        for _ in range(fan_in):
            if rng.random() < 0.8:  # mostly recent tensors: a network-like locality
                pick = available[-1 - min(int(rng.expovariate(0.7)), len(available) - 1)]
            else:
                pick = rng.choice(available)
            if pick not in chosen:
                chosen.append(pick)
        if i == late_at and late_input is not None:
            chosen.append(late_input)
        if rng.random() < weight_prob:
            chosen.append(b.tensor(f"w{i}", size(), TensorKind.WEIGHT))
        n_out = 2 if rng.random() < multi_output_prob else 1
        outs = [b.tensor(f"t{i}_{k}", size()) for k in range(n_out)]
        b.op(f"op{i}", rng.choice(("Conv", "Relu", "Add", "Concat")), chosen, outs, macs=size())
        for t in chosen:
            unread.discard(t)
        available.extend(outs)
        unread.update(outs)
    # Every unread activation but (sometimes) one is a graph output; the last op's
    # outputs always are, and a random read activation sometimes is too.
    spare = sorted(unread)
    keep_unread = spare[0] if len(spare) > 1 and rng.random() < 0.5 else None
    for t in spare:
        if t != keep_unread:
            b.mark_output(t)
    activations = [t for t in available if t not in unread and t not in inputs]
    if activations and rng.random() < 0.5:
        b.mark_output(rng.choice(activations))
    return b.build()


def tiny_spill_graph(seed: int, n_ops: int, *, weights: bool = True) -> Graph:
    """A seeded tiny DAG with long skips and tensors of 1 to 3 KiB, where spills matter.

    Each op reads the latest tensor or one of the three latest (so branches can run in
    parallel) and sometimes an older activation or the input, sometimes a 1 KiB weight;
    some ops write two activations; the last op's output and sometimes an inner
    activation are graph outputs. Use a 1 KiB alignment so that capacities are a few
    address units (see :mod:`memplan.testing.bruteforce`).

    Args:
        seed: random seed (same seed, same graph).
        n_ops: number of ops (>= 1).
        weights: whether ops may read weights.
    """
    rng = random.Random(seed)
    b = GraphBuilder(f"tiny-{seed}-{n_ops}")
    kib = 1024
    x = b.tensor("x", rng.choice((1, 2)) * kib, TensorKind.INPUT)
    produced = [x]
    for i in range(n_ops):
        reads = [produced[-1] if rng.random() < 0.6 else rng.choice(produced[-3:])]
        if len(produced) > 2 and rng.random() < 0.6:
            older = rng.choice(produced[:-1])
            if older not in reads:
                reads.append(older)
        if weights and rng.random() < 0.3:
            reads.append(b.tensor(f"w{i}", kib, TensorKind.WEIGHT))
        outs = [b.tensor(f"t{i}", rng.choice((1, 2, 3)) * kib)]
        if rng.random() < 0.15:
            outs.append(b.tensor(f"t{i}b", rng.choice((1, 2)) * kib))
        b.op(f"op{i}", "Op", reads, outs)
        produced.extend(outs)
    b.mark_output(produced[-1])
    if rng.random() < 0.3:
        b.mark_output(produced[rng.randrange(1, len(produced))])
    return b.build()
