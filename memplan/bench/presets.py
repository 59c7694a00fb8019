"""Named benchmark runs: ``memplan bench --preset NAME`` (explicit flags still win).

Each preset is a complete ``memplan bench`` request that the project reruns to check a
claim; its results go to ``bench-results/<name>`` unless ``-o`` says otherwise, and
rerunning resumes. See ``benchmarks/README.md`` for what each one measures.
"""

from __future__ import annotations

from dataclasses import dataclass

from memplan.errors import ConfigError

#: The four small NAS networks of the ILP table (fast enough for proofs at 60 s).
NAS_SMALL = (
    "darts_v2_cifar_small",
    "amoebanet_a_cifar_small",
    "nasnet_a_cifar_small",
    "pnasnet5_cifar_small",
)
#: The fixed-order model with the min-peak order, in both backends (a cross-check).
FIXED_CPSAT = "ilp[mode=fixed,order=min-peak]"
FIXED_MILP = "ilp[backend=milp,mode=fixed,order=min-peak]"


@dataclass(frozen=True, slots=True)
class Preset:
    """Values of the ``memplan bench`` flags for one named run."""

    name: str  # --preset NAME
    description: str  # one line for --help
    suite: tuple[str, ...]  # --suite entries
    solvers: str  # --solvers (specs, comma-separated)
    budgets: str  # --budgets
    scope: str  # --scope: activations, all or both
    time_limit_s: float  # --time-limit, seconds per cell
    dtype_bytes: int | None = None  # --dtype-bytes; None = the ONNX types
    exact_mp_s: float | None = None  # --exact-mp seconds; None = cached proof or heuristic


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "light",
            "greedy against the ILP on the nine light ONNX models, both scopes, at M_R, "
            "M_H and M_P",
            ("light",),
            "greedy,ilp",
            "MR,MH,MP",
            "both",
            60.0,
        ),
        Preset(
            "ilp",
            "COSMA's table: greedy, the free-order ILP and the fixed-order model in both "
            "backends, on the light models and four small NAS networks, both scopes, M_P "
            "proven first (30 s each)",
            ("light", *NAS_SMALL),
            f"greedy,ilp,{FIXED_CPSAT},{FIXED_MILP}",
            "MR,MH,MP",
            "both",
            60.0,
            exact_mp_s=30.0,
        ),
        Preset(
            "greedy",
            "the greedy baseline on the light models at MR, MH, MP, 512KiB and 2MiB with "
            "1-byte elements (COSMA's int8 setting)",
            ("light",),
            "greedy",
            "MR,MH,MP,512KiB,2MiB",
            "activations",
            60.0,
            dtype_bytes=1,
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ConfigError: no such preset (the message lists them).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"--preset {name!r} is not a preset; presets: {', '.join(PRESETS)}"
        ) from None
