"""Config resolution: typed parsing of `key=value` overrides and its errors."""

from __future__ import annotations

from dataclasses import dataclass, FrozenInstanceError

import pytest

from experiments.config import as_dict, check_defaults, coerce, parse_assignments, resolve


pytestmark = pytest.mark.smoke


@dataclass(frozen=True)
class Toy:
    n: int = 3
    rate: float = 0.5
    name: str = "euler"
    on: bool = False


def test_strings_are_parsed_with_the_default_type():
    config = resolve(Toy(), {"n": "7", "rate": "2", "name": "rk4", "on": "true"})
    assert config == Toy(n=7, rate=2.0, name="rk4", on=True)
    assert type(config.rate) is float


def test_typed_values_are_accepted_when_they_fit():
    assert resolve(Toy(), {"n": 4, "rate": 1, "on": False}) == Toy(n=4, rate=1.0)
    with pytest.raises(ValueError, match="'n' expects int"):
        resolve(Toy(), {"n": 4.0})
    with pytest.raises(ValueError, match="'rate' expects float"):
        resolve(Toy(), {"rate": True})


@pytest.mark.parametrize("key, value", [("n", "3.5"), ("n", "x"), ("rate", "fast"), ("on", "maybe")])
def test_wrong_type_names_the_key(key, value):
    with pytest.raises(ValueError, match=f"config key '{key}' expects"):
        resolve(Toy(), {key: value})


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan")])
def test_non_finite_floats_are_rejected(value):
    with pytest.raises(ValueError, match="config key 'rate' must be finite"):
        resolve(Toy(), {"rate": value})


def test_unknown_key_lists_the_valid_keys():
    with pytest.raises(ValueError, match=r"unknown config key 'm' .*valid keys: n, rate, name, on"):
        resolve(Toy(), {"m": "1"}, experiment="toy")


def test_parse_assignments():
    assert parse_assignments(["a=1", "b = x=y", "a=2"]) == {"a": "2", "b": "x=y"}
    with pytest.raises(ValueError, match="key=value"):
        parse_assignments(["novalue"])
    with pytest.raises(ValueError, match="key=value"):
        parse_assignments(["=3"])


def test_defaults_must_be_frozen_scalar_dataclasses():
    check_defaults(Toy())
    with pytest.raises(FrozenInstanceError):
        Toy().n = 1  # type: ignore[misc]

    @dataclass
    class Mutable:
        n: int = 1

    @dataclass(frozen=True)
    class Listy:
        xs: tuple = (1, 2)

    with pytest.raises(TypeError, match="frozen"):
        check_defaults(Mutable())
    with pytest.raises(TypeError, match="bool, int, float or str"):
        check_defaults(Listy())
    assert as_dict(Toy()) == {"n": 3, "rate": 0.5, "name": "euler", "on": False}
    assert coerce("on", "0", False) is False


def test_quick_preset_refuses_the_sizes_it_replaces():
    """`quick` replaces the run sizes; setting one of them as well would be silently ignored."""
    from experiments.catalog import CATALOG

    with pytest.raises(ValueError, match="'quick' replaces steps, betas; do not also set steps"):
        CATALOG["galley-tension"].resolve({"quick": "true", "steps": "50"})
    assert CATALOG["galley-tension"].resolve({"quick": "true", "seed": "2"}).seed == 2
