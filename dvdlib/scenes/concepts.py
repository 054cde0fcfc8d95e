"""The concept look-ups toy worlds 1 and 2 share: a world is a frozen dataclass with ``concepts``
(each with a ``name``, a ``role``, ``variants`` and ``rigid``) and a ``title`` in prose."""

from __future__ import annotations

from dataclasses import replace


class ConceptLookup:
    """Look-ups over a world's ``concepts``, and `with_variants` (the causal variable, paper §3.3)."""

    def __post_init__(self):
        names = [c.name for c in self.concepts]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate concept names in {names}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.concepts]

    def concept(self, name: str):
        for c in self.concepts:
            if c.name == name:
                return c
        raise KeyError(f"no concept {name!r} in {self.title}; known: {self.names}")

    def by_role(self, role: str, rigid: bool | None = None) -> list:
        """Concepts of a role; ``rigid=True`` only fixed-variant ones, ``False`` only the others."""
        return [c for c in self.concepts if c.role == role and (rigid is None or c.rigid == rigid)]

    @property
    def objects(self) -> list[str]:
        return [c.name for c in self.by_role("object")]

    @property
    def rigid(self) -> list[str]:
        return [c.name for c in self.concepts if c.rigid]

    def with_variants(self, **variants: int | None):
        """A copy where the named concepts have the given number of variants (None: unlimited)."""
        for name in variants:
            self.concept(name)
        return replace(self, concepts=tuple(replace(c, variants=variants.get(c.name, c.variants)) for c in self.concepts))
