"""Solver specs of ``memplan bench`` and ``memplan compare``: ``NAME[opt=value,...]``.

A spec names a solver (registry name or ``module:Class`` path) and, in brackets, options
of its own, so one solver can appear in several variants side by side::

    --solvers greedy,ilp,ilp[mode=fixed,order=min-peak,backend=milp]

``--option NAME=VALUE`` sets an option for every spec whose solver has it, and
``--option SOLVER.NAME=VALUE`` for every spec of that solver; options in a spec's
brackets win over both. A row's label (:func:`memplan.bench.rows.solver_label`) is
written in the same syntax.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from memplan.errors import ConfigError


def split_specs(text: str, what: str = "--solvers") -> tuple[str, ...]:
    """Split a comma-separated list of specs (commas inside brackets stay).

    Raises:
        ConfigError: the list is empty, has an empty item or a repeated one, or its
            brackets do not match.
    """
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"{what} {text!r}: a ']' without its '['")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise ConfigError(f"{what} {text!r}: a '[' without its ']'")
    parts.append("".join(current))
    items = [p.strip() for p in parts]
    if not any(items):
        raise ConfigError(f"{what} is empty; give a comma-separated list")
    if not all(items):
        raise ConfigError(f"{what} {text!r} has an empty item; remove the extra comma")
    return refuse_repeats(items, what, text)


def refuse_repeats(items: Sequence[str], what: str, text: str) -> tuple[str, ...]:
    """``items`` as a tuple, or :class:`ConfigError` naming the first item given twice.

    A repeated solver or budget used to be merged silently in bench and compare, while
    ``memplan rl evaluate`` refused it (it had played and counted the cells twice).
    """
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ConfigError(f"{what} {text!r}: {item!r} is given twice; give each once")
        seen.add(item)
    return tuple(items)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"ilp[mode=fixed]"`` -> ``("ilp", {"mode": "fixed"})``.

    Raises:
        ConfigError: a malformed option inside the brackets.
    """
    spec = spec.strip()
    if not spec.endswith("]") or "[" not in spec:
        return spec, {}
    name, _, inner = spec[:-1].partition("[")
    options: dict[str, str] = {}
    for pair in inner.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"solver {spec!r}: {pair.strip()!r} must look like NAME=VALUE, e.g. "
                "ilp[mode=fixed,backend=milp]; commas split the options in brackets, so "
                f"give a value that holds one as --option {name.strip()}.NAME=VALUE"
            )
        if key.strip() in options:
            raise ConfigError(
                f"solver {spec!r}: option {key.strip()!r} is given twice; give it once "
                "(or compare the variants as two specs, e.g. greedy[order=model],greedy[order=dfs])"
            )
        options[key.strip()] = value.strip()
    return name.strip(), options


def solver_options(
    spec: str, options: Mapping[str, Mapping[str, str]]
) -> tuple[str, dict[str, str]]:
    """The solver name of ``spec`` and its options: ``--option`` values, then its own."""
    name, inline = parse_spec(spec)
    return name, {**dict(options.get(spec, {})), **inline}


def split_solver_options(
    pairs: Sequence[str] | None, specs: Sequence[str]
) -> dict[str, dict[str, str]]:
    """Distribute ``--option`` values over the specs (see the module docstring).

    Raises:
        ConfigError: malformed pair, unknown solver, or an option no solver has.
    """
    from memplan.options import describe_options
    from memplan.solver import solver_class

    names = {spec: parse_spec(spec)[0] for spec in specs}
    result: dict[str, dict[str, str]] = {spec: {} for spec in specs}
    known = {
        spec: {o.name for o in describe_options(solver_class(name))} for spec, name in names.items()
    }
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                f"--option {pair!r} must look like SOLVER.NAME=VALUE or NAME=VALUE "
                "(e.g. greedy.order=min-peak)"
            )
        name = name.strip()
        target, dot, option = name.rpartition(".")
        targets = [s for s in specs if dot and target in (s, names[s])]
        if targets:
            for spec in targets:
                result[spec][option] = value.strip()
            continue
        if dot and ":" not in target:
            raise ConfigError(
                f"--option {pair!r}: solver {target!r} is not among --solvers ({', '.join(specs)})"
            )
        takers = [s for s in specs if name in known[s]]
        if not takers:
            raise ConfigError(
                f"--option {pair!r}: no solver among {', '.join(specs)} has an option "
                f"{name!r}; see `memplan solvers` for their options"
            )
        for spec in takers:
            result[spec][name] = value.strip()
    return result


def check_solvers(specs: Sequence[str], options: Mapping[str, Mapping[str, str]]) -> None:
    """Instantiate every solver once in the parent so bad names or options fail early."""
    from memplan.solver import make_solver

    for spec in specs:
        make_solver(*solver_options(spec, options))
