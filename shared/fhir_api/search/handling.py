"""Search handling (FHIR's ``Prefer: handling``) and what a resource's searches accept beyond their
parameter table: the options ``parse_query`` reads, the sentence every refusal ends with, and the
collector of what a query asks that the server would not use (strict: one 400; lenient: warnings).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fhir_api.errors import InvalidRequest, Issue

if TYPE_CHECKING:
    from fhir_api.search.parameters import SearchParameter, SearchQuery


@dataclass(frozen=True)
class SearchOptions:
    """What a resource's searches accept beyond its own parameter table: ``sorts`` (``_sort`` values),
    ``chained`` (target type -> the parameters a chain may name), ``includes``/``revincludes`` (the
    ``_include``/``_revinclude`` values) and ``elements`` (the names ``_elements`` may list, asked only
    when a query subsets: they come from the FHIR models; None when the resource is never subsetted)."""

    sorts: Collection[str] = ()
    chained: Mapping[str, Mapping[str, SearchParameter]] = field(default_factory=dict)
    includes: Collection[str] = ()
    revincludes: Collection[str] = ()
    elements: Callable[[], Collection[str]] | None = None


def supported_parameters(parameters: Mapping[str, SearchParameter], options: SearchOptions) -> str:
    """One sentence listing what a resource's searches accept (said with every refusal)."""
    names = [
        name
        for parameter in parameters.values()
        for name in (parameter.name, *(f"{parameter.name}:{modifier}" for modifier in parameter.modifiers))
    ]
    for parameter in parameters.values():
        for target in parameter.target:
            names.extend(f"{parameter.name}.{chained}" for chained in options.chained.get(target, {}))
    sorts = options.sorts
    extras = "".join(
        f", {name} ({', '.join(values)})"
        for name, values in (("_include", options.includes), ("_revinclude", options.revincludes))
        if values
    )
    subsets = options.elements is not None
    summary = "count, true, text, data, false), _elements" if subsets else "count, false)"
    return (
        f"Supported search parameters: {', '.join(names)}; result parameters: _count, "
        f"_sort ({', '.join(sorts) if sorts else 'none'}), _summary ({summary}, "
        f"_total (none, estimate, accurate){extras}, _page."
    )


class Unused:
    """What a query asks that the server would not use, one issue per query key (so the answer stays
    small however many values are sent): strict makes them the error issues of one 400 (``finish``),
    lenient warning issues while the search goes on without them."""

    def __init__(
        self, strict: bool, parameters: Mapping[str, SearchParameter], options: SearchOptions
    ) -> None:
        self.strict = strict
        self.parameters = parameters
        self.options = options
        # (query key, issue code) -> (what is wrong, what leaving it out means); codes by query key.
        self.problems: dict[tuple[str, str], tuple[str, str]] = {}
        self.codes: dict[str, list[str]] = {}

    def add(self, key: str, problem: str, when_ignored: str, code: str = "not-supported") -> None:
        """``problem``: what is wrong with ``key``; ``when_ignored``: what leaving it out means."""
        self.problems.setdefault((key, code), (problem, when_ignored))

    def unknown_code(self, key: str, parameter: SearchParameter, code: str) -> None:
        """A code the parameter's required value set lacks (no resource can hold it)."""
        codes = self.codes.setdefault(key, [])
        if code not in codes:
            codes.append(code)
        listed = ", ".join(f"'{value[:64]}'" for value in codes)
        one = len(codes) == 1
        self.problems[(key, "code-invalid")] = (
            f"{listed} {'is not a' if one else 'are not'} {parameter.name} code{'' if one else 's'} "
            f"({parameter.name} takes {', '.join(parameter.codes)})",
            f"{'it was' if one else 'they were'} left out of the search "
            "(a list left with no code matches nothing)",
        )

    def finish(self) -> tuple[Issue, ...]:
        """The warnings (lenient); raise the 400 when strict and anything was unused."""
        if not self.strict:
            return tuple(
                Issue(code, f"{problem}; {when_ignored}.", (key,), severity="warning")
                for (key, code), (problem, when_ignored) in self.problems.items()
            )
        if self.problems:
            supported = supported_parameters(self.parameters, self.options)
            issues = [
                Issue(code, f"{problem}. {supported}", (key,))
                for (key, code), (problem, _) in self.problems.items()
            ]
            raise InvalidRequest(issues[0].diagnostics, expression=issues[0].expression, issues=issues)
        return ()


def parse_includes(
    result: SearchQuery, name: str, values: Sequence[str], options: SearchOptions, unused: Unused
) -> None:
    """``_include``/``_revinclude``: each occurrence one of the values the resource offers."""
    offered = options.includes if name == "_include" else options.revincludes
    kept = list(getattr(result, name[1:]))
    for value in values:
        if value in offered:
            if value not in kept:
                kept.append(value)
            continue
        what = f"Result parameter '{name}' value '{value[:64]}' is not supported"
        unused.add(
            name,
            f"{what} ({name} takes {', '.join(offered)})"
            if offered
            else f"{what} ({name} is not offered on this resource)",
            "it was ignored, so no resource is included for it",
        )
    setattr(result, name[1:], tuple(kept))


def parse_elements(result: SearchQuery, value: str, options: SearchOptions, unused: Unused) -> None:
    """``_elements=a,b``: top-level element names of the resource (a choice by its base name too)."""
    if options.elements is None:
        unused.add(
            "_elements",
            "Result parameter '_elements' is not supported on this resource",
            "it was ignored, so whole resources are returned",
        )
        return
    names: list[str] = []
    for name in value.split(","):
        name = name.strip()
        if name in options.elements():
            if name not in names:
                names.append(name)
        else:
            unused.add(
                "_elements",
                f"Result parameter '_elements' names '{name[:64]}', which is not an element of this resource",
                "it was left out of the list",
            )
    result.elements = tuple(names)
