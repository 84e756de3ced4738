"""Plain record classes for the types every command loads.

Each ``@dataclass`` costs about half a millisecond when its module is imported (it writes and
compiles its methods), and management commands load a dozen of them before doing anything:
those records are written out by hand on these two bases instead, with the same equality,
hashing and repr a dataclass would give them.
"""

from __future__ import annotations


class Record:
    """Equal when of the same class with equal fields (named by ``_fields``); unhashable, as a
    mutable dataclass is."""

    _fields: tuple[str, ...] = ()

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{self.__class__.__qualname__}({fields})"


class FrozenRecord(Record):
    """A record whose fields are set once, by ``_set`` in its ``__init__``; hashable."""

    def _set(self, *values: object) -> None:
        for name, value in zip(self._fields, values, strict=True):
            object.__setattr__(self, name, value)

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")
