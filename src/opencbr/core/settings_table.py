"""The README's table of settings, generated from `Settings` so that the two cannot drift
(a test compares them)."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from .settings import Settings

__all__ = ["environment_variable", "markdown_table"]


def environment_variable(name: str, field: FieldInfo) -> str:
    """The variable a setting is read from (`OPENCBR_` and its name, unless it has an alias)."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"{Settings.model_config.get('env_prefix', '')}{name}".upper()


def _shown_default(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("shown_default"), str):
        return str(extra["shown_default"])
    value: Any = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, list):
        return f"`{','.join(str(item) for item in value)}`"
    if isinstance(value, PurePath) and not value.is_absolute():
        return f"`./{value}`"
    return f"`{value}`"


def markdown_table() -> str:
    """Every setting: its environment variable, its default and what it means."""
    lines = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        variable = environment_variable(name, field)
        lines.append(f"| `{variable}` | {_shown_default(field)} | {field.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # uv run python -m opencbr.core.settings_table
    print(markdown_table(), end="")
