"""Containers beyond Sequential and ModuleList: ModuleDict, ParameterList, ParameterDict."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from . import Module, Parameter


def _as_parameter(value: Any) -> Parameter:
    return value if isinstance(value, Parameter) else Parameter(value)


V = TypeVar("V")


class _NamedItems(Generic[V]):
    """The read-only mapping methods of a container whose ``_items()`` is a dict of its entries."""

    def _items(self) -> dict[str, V]:
        raise NotImplementedError

    def __contains__(self, key: object) -> bool:
        return key in self._items()

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def keys(self) -> Iterable[str]:
        return self._items().keys()

    def values(self) -> Iterable[V]:
        return self._items().values()

    def items(self) -> Iterable[tuple[str, V]]:
        return self._items().items()


class ModuleDict(_NamedItems[Module], Module):
    """Modules registered under string keys, in insertion order; you write the forward."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        if modules is not None:
            self.update(modules)

    def _items(self) -> dict[str, Module]:
        return {k: v for k, v in vars(self).items() if isinstance(v, Module)}

    def __getitem__(self, key: str) -> Module:
        return self._items()[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._items()[key], self.__dict__[key]

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        for key, module in modules.items() if isinstance(modules, Mapping) else modules:
            self[key] = module


class ParameterList(Module):
    """Parameters registered as ``"0"``, ``"1"``, ...; tensors or arrays become Parameters."""

    def __init__(self, values: Iterable[Any] | None = None) -> None:
        for value in values or []:
            self.append(value)

    def _items(self) -> list[Parameter]:
        return [v for v in vars(self).values() if isinstance(v, Parameter)]

    def append(self, value: Any) -> ParameterList:
        setattr(self, str(len(self)), _as_parameter(value))
        return self

    def extend(self, values: Iterable[Any]) -> ParameterList:
        for value in values:
            self.append(value)
        return self

    def __getitem__(self, index: int) -> Parameter:
        return self._items()[index]

    def __setitem__(self, index: int, value: Any) -> None:
        setattr(self, str(range(len(self))[index]), _as_parameter(value))

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self._items())

    def extra_repr(self) -> str:
        return "\n".join(
            f"({i}): Parameter containing: [{type(p).__name__} of size {'x'.join(map(str, p.shape))}]"
            for i, p in enumerate(self)
        )


class ParameterDict(_NamedItems[Parameter], Module):
    """Parameters registered under string keys, in insertion order."""

    def __init__(self, parameters: Mapping[str, Any] | None = None) -> None:
        for key, value in (parameters or {}).items():
            self[key] = value

    def _items(self) -> dict[str, Parameter]:
        return {k: v for k, v in vars(self).items() if isinstance(v, Parameter)}

    def __getitem__(self, key: str) -> Parameter:
        return self._items()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, _as_parameter(value))


__all__ = ["ModuleDict", "ParameterDict", "ParameterList"]
