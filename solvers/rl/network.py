"""The policy/value network, in numpy: what playing needs (training is in torch).

One small network reads an :class:`~memplan.solvers.rl.features.Encoding`::

    globals (G) ──► g = relu(Wg x + bg)                                   (H)
    slot i (F)  ──► h_i = relu(Wa a_i + Ua g + ba) ──► e_i = relu(We h_i + be)   (H)
                    logit_i = wp . e_i + bp        (masked slots: -inf)
    value       = -softplus(wo . relu(Wv [g, mean_i e_i, max_i e_i] + bv) + bo)

Every slot is scored by the same weights (the slot order does not matter), and the
value, the predicted future non-compulsory traffic in units of the instance's scale,
is never positive. :data:`PARAMETERS` lists the arrays with their shapes; a checkpoint
is an ``.npz`` file (:meth:`Network.to_bytes`) of them plus a JSON ``meta`` entry (how
it was trained).
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memplan.errors import ConfigError
from memplan.solvers.rl.features import ACTION_FEATURES, GLOBAL_FEATURES, Encoding

#: Hidden width.
HIDDEN = 64
#: Checkpoint format version (bump when the features or the layout change).
FORMAT_VERSION = 1

#: Parameter names and shapes (weights are (out, in), as torch stores them).
PARAMETERS: dict[str, tuple[int, ...]] = {
    "g.weight": (HIDDEN, GLOBAL_FEATURES),
    "g.bias": (HIDDEN,),
    "a.weight": (HIDDEN, ACTION_FEATURES),
    "a.bias": (HIDDEN,),
    "u.weight": (HIDDEN, HIDDEN),
    "e.weight": (HIDDEN, HIDDEN),
    "e.bias": (HIDDEN,),
    "p.weight": (1, HIDDEN),
    "p.bias": (1,),
    "v.weight": (HIDDEN, 3 * HIDDEN),
    "v.bias": (HIDDEN,),
    "o.weight": (1, HIDDEN),
    "o.bias": (1,),
}

#: What a path that is neither a regular file nor a folder is, for messages.
_NOT_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)

#: The checkpoint shipped inside the package.
SHIPPED_CHECKPOINT = Path(__file__).with_name("checkpoint") / "agent.npz"


@dataclass(frozen=True)
class Network:
    """Weights of the policy/value network and how they were made."""

    params: dict[str, np.ndarray]  # name -> float32 array of PARAMETERS[name]'s shape
    meta: dict[str, Any] = field(default_factory=dict)  # training command, seed, data, time
    # The params in float64, which the forward pass uses: huge but finite float32 weights
    # overflowed a float32 pass to NaN logits; in float64 any finite ones give finite
    # outputs (four layers of products of at most 3.4e38 stay far below 1e308).
    _wide: dict[str, np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, shape in PARAMETERS.items():
            if name not in self.params or tuple(self.params[name].shape) != shape:
                got = self.params.get(name)
                raise ConfigError(
                    f"network parameter {name!r}: expected shape {shape}, got "
                    f"{None if got is None else tuple(got.shape)}; the checkpoint does not "
                    "match this memplan version (retrain with memplan rl train)"
                )
        wide = {name: np.asarray(self.params[name], dtype=np.float64) for name in PARAMETERS}
        object.__setattr__(self, "_wide", wide)

    @staticmethod
    def initial(seed: int) -> Network:
        """Random weights (scaled like torch's default initialisation)."""
        rng = np.random.default_rng(seed)
        params = {}
        for name, shape in PARAMETERS.items():
            fan_in = shape[-1] if len(shape) > 1 else PARAMETERS[name.replace("bias", "weight")][1]
            bound = 1.0 / np.sqrt(fan_in)
            params[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
        return Network(params)

    def __call__(self, encoding: Encoding) -> tuple[np.ndarray, float]:
        """Logits per slot (-inf where masked) and the value of one encoded state."""
        p = self._wide
        g = np.maximum(p["g.weight"] @ encoding.globals.astype(np.float64) + p["g.bias"], 0.0)
        legal = encoding.mask
        rows = encoding.actions[legal].astype(np.float64)
        h = np.maximum(rows @ p["a.weight"].T + (p["u.weight"] @ g + p["a.bias"]), 0.0)
        e = np.maximum(h @ p["e.weight"].T + p["e.bias"], 0.0)
        logits = np.full(legal.shape[0], -np.inf, dtype=np.float64)
        logits[legal] = e @ p["p.weight"][0] + p["p.bias"][0]
        pooled = np.concatenate([g, e.mean(axis=0), e.max(axis=0)])
        hidden = np.maximum(p["v.weight"] @ pooled + p["v.bias"], 0.0)
        z = float(p["o.weight"][0] @ hidden + p["o.bias"][0])
        value = -(max(z, 0.0) + np.log1p(np.exp(-abs(z))))  # -softplus(z), stable
        return logits, value

    def to_bytes(self) -> bytes:
        """The ``.npz`` checkpoint :meth:`load` reads (write it with an atomic writer)."""
        import io

        meta = dict(self.meta, format_version=FORMAT_VERSION)
        buffer = io.BytesIO()
        arrays: dict[str, Any] = dict(self.params)
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @staticmethod
    def load(path: str | Path) -> Network:
        """Read a checkpoint (:meth:`to_bytes`).

        Raises:
            ConfigError: the file is missing, unreadable, or of another format version.
        """
        try:
            mode = os.stat(path).st_mode
            if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):  # a folder: open() says
                kind = next((k for test, k in _NOT_FILES if test(mode)), "not a regular file")
                raise ConfigError(
                    f"{path}: is {kind}; a network checkpoint must be a regular .npz file "
                    "(reading a pipe or a device can block forever)"
                )
            with open(path, "rb") as handle:
                magic = handle.read(4)
        except OSError as error:
            raise ConfigError(
                f"{path}: cannot read the network checkpoint ({error.strerror or error}); give "
                "an .npz file written by memplan rl train"
            ) from None
        if magic != b"PK\x03\x04":  # else np.load tries the file as a pickle or a bare array
            raise ConfigError(
                f"{path}: not an .npz (zip) file; give an .npz checkpoint written by memplan "
                "rl train"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"])) if "meta" in data else {}
                params = {
                    name: data[name].astype(np.float32) for name in PARAMETERS if name in data
                }
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
            raise ConfigError(
                f"{path}: cannot read the network checkpoint ({error}); give an .npz file "
                "written by memplan rl train"
            ) from None
        if not isinstance(meta, dict):
            raise ConfigError(f"{path}: the checkpoint's meta is not a JSON object; give an "
                              ".npz file written by memplan rl train")  # fmt: skip
        broken = [name for name, value in params.items() if not np.isfinite(value).all()]
        if broken:
            raise ConfigError(
                f"{path}: the checkpoint's {broken[0]} holds NaN or infinite weights (a "
                "diverged training run?); use another checkpoint"
            )
        if meta.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"{path}: checkpoint format {meta.get('format_version')!r}, this memplan reads "
                f"{FORMAT_VERSION}; retrain with memplan rl train"
            )
        try:
            return Network(params, meta)
        except ConfigError as error:  # a parameter of another shape: name the file
            raise ConfigError(f"{path}: {error}") from None
