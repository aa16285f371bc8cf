"""The vocabulary of the build options' declaration (:data:`flowprep.builder.options.OPTIONS`):
what one row says (:class:`BuildOption`), a command-line option as plain data (:class:`Flag`,
:class:`Param`; the command layer makes the click options), and what the conversions read of a
config by name (:class:`ConfigView`). This module imports no click.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol


class ConfigView(Protocol):
    """What the conversions read of a :class:`flowprep.builder.config.BuildConfig` by name (that
    module imports this one; the rest is read field by field, by the names of :data:`OPTIONS`)."""

    pack: str | None
    rgb_format: str
    rgb_quality: int
    size: tuple[int, int] | None

    @property
    def needs_flow(self) -> bool: ...


class _FieldDefault:
    def __repr__(self) -> str:
        return "FIELD_DEFAULT"


#: a :class:`Flag`'s default that is the BuildConfig field's own default (one value, not two)
FIELD_DEFAULT: Any = _FieldDefault()


@dataclass(frozen=True)
class Param:
    """A click parameter type as plain data: ``kind`` names a factory in the command layer's table
    (:mod:`flowprep.commands.params` or click: ``choice``, ``int_range``, ``count``, ``finite``,
    ``positive``, ``seed``, ``size``, ``shard``, ``gpus``, ``byte_count``, ``byte_size``, ``path``),
    called with ``args`` and ``options``."""

    kind: str
    args: tuple[Any, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()


def param(kind: str, *args: Any, **options: Any) -> Param:
    return Param(kind, args, tuple(options.items()))


@dataclass(frozen=True)
class Flag:
    """One command-line option of the build commands, as plain data (``decls`` as click takes them;
    the click parameter is named after the long one, ``--no-progress`` -> ``no_progress``)."""

    decls: tuple[str, ...]
    help: str | None = None
    type: Param | None = None
    default: Any = FIELD_DEFAULT
    show_default: bool | str = False
    metavar: str | None = None
    multiple: bool = False
    is_flag: bool = False
    required: bool = False

    @property
    def name(self) -> str:
        return max(self.decls, key=len).lstrip("-").replace("-", "_")


def flag(*decls: str, **spec: Any) -> tuple[Flag, ...]:
    return (Flag(decls, **spec),)


def same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class BuildOption:
    """What becomes of one :class:`~flowprep.builder.config.BuildConfig` field.

    Attributes:
        role: ``"output"``: decides the bytes of the dataset, part of the fingerprint a resumed build
            is compared with; ``"path"``: where things are (a moved release is the same release, its
            files' names and sizes are compared apart); ``"run"``: how this run goes (workers,
            scheduler, limits), never compared.
        group: ``"flow"``/``"pack"``: in the fingerprint only when the build computes flow / is packed
            (so that folder builds kept the fingerprint they had before packing existed).
        omit_default: in the fingerprint and the build state only when not the field's default: an
            option added later whose default builds what was built before keeps the fingerprints of
            existing outputs (their builds resume instead of being refused as other settings).
        state: in ``.flowprep/build.json``: ``"always"``, ``"if_set"`` (only when not None/False: the
            states of older versions, which lack the key, read the same), ``"active"`` (only when the
            group is active) or ``"never"``; None: ``"always"`` for output and path options,
            ``"never"`` for run options.
        to_worker: the value the clip jobs get, as the :class:`~flowprep.builder.job.JobSettings`
            field of the same name (None: not sent).
        record: where the dataset record keeps it: a :class:`~flowprep.layout.dataset_record.DatasetRecord`
            field (``"layout"``) or ``"section.field"`` (``"decode.short_side"``); None: not kept,
            or kept through the plan (the split and source sections).
        to_record: the recorded value (default: the field's value).
        cli: the shared options of the build commands that set it (in ``--help`` order).
        param: the click parameter that sets it when each command declares its own (``--splits``
            and ``--classes`` have a help text per command).
        from_cli: the field's value from the parsed click values (default: the value of its one
            flag or ``param``); may raise :class:`~flowprep.errors.OptionError`.
        from_state: the field's value from its JSON in the build state (default: as stored).
    """

    role: Literal["output", "path", "run"] = "output"
    group: Literal["flow", "pack"] | None = None
    omit_default: bool = False
    state: Literal["always", "if_set", "active", "never"] | None = None
    to_worker: Callable[[Any], Any] | None = None
    record: str | None = None
    to_record: Callable[[ConfigView], Any] | None = None
    cli: tuple[Flag, ...] = ()
    param: str | None = None
    from_cli: Callable[[Mapping[str, Any]], Any] | None = None
    from_state: Callable[[Any], Any] | None = None

    @property
    def stored(self) -> str:
        return self.state or ("never" if self.role == "run" else "always")
