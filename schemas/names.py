"""Adapter, alias and ref names, validated before they touch a path or a query."""

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from loraledger.schemas.errors import InvalidInput, NotFound

# Names become folder names, Hub repo suffixes and vLLM module names, so they are restricted to a set
# that is safe in all three: no path separators, no leading dot, no "..". Patterns are used with
# fullmatch: "$" alone also matches before a trailing newline, which let "current\n" through.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# Version numbers are 32-bit integers in the database (PostgreSQL's INTEGER): a larger one cannot exist,
# and handing it to a driver raises OverflowError (SQLite) or "integer out of range" (PostgreSQL).
MAX_VERSION = 2**31 - 1
RESERVED_ALIASES = frozenset({"current", "latest", "base"})
VERSION_SELECTOR = re.compile(r"v?([0-9]+)")


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` unchanged or raise InvalidInput saying what is wrong with it."""
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidInput(
            f"invalid {what} {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'"
        )
    return name


def check_alias(alias: str) -> str:
    """Aliases follow name rules and must not look like a version number."""
    check_name(alias, "alias")
    if VERSION_SELECTOR.fullmatch(alias):
        raise InvalidInput(f"invalid alias {alias!r}: it would be read as a version number")
    return alias


AdapterName = Annotated[str, AfterValidator(check_name)]


class Ref(BaseModel):
    """A pointer to one adapter version: ``name``, ``name@3``, ``name@v3``, ``name@current``, ``name@ALIAS``.

    ``version`` and ``alias`` are mutually exclusive; neither means the adapter's ``current`` alias.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Ref":
        name, sep, selector = text.strip().partition("@")
        check_name(name, "adapter name")
        if not sep:
            return cls(name=name)
        if not selector:
            raise InvalidInput(f"invalid ref {text!r}: nothing after '@' (try {name}@1 or {name}@current)")
        number = VERSION_SELECTOR.fullmatch(selector)
        if number:
            version = int(number.group(1))
            if version < 1:
                raise InvalidInput(f"invalid ref {text!r}: versions start at 1")
            if version > MAX_VERSION:
                shown = text if len(text) <= 140 else text[:139] + "…"
                raise NotFound(f"{shown} does not exist: version numbers stop at {MAX_VERSION}")
            return cls(name=name, version=version)
        check_name(selector, "alias")
        return cls(name=name, alias=selector)

    @property
    def selector(self) -> str:
        if self.version is not None:
            return str(self.version)
        return self.alias or "current"

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
