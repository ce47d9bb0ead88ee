"""The README's table of settings is the one generated from `Settings`: every setting is
documented, with its variable and its default."""

from __future__ import annotations

from pathlib import Path

from opencbr.core.settings import Settings
from opencbr.core.settings_table import environment_variable, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_is_generated_from_the_settings() -> None:
    hint = "regenerate: uv run python -m opencbr.core.settings_table (into README.md)"
    assert markdown_table() in README.read_text(), hint


def test_every_setting_has_a_row_that_says_what_it_means() -> None:
    table = markdown_table()
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        assert f"| `{environment_variable(name, field)}` |" in table
    assert (
        environment_variable(
            "prometheus_multiproc_dir", Settings.model_fields["prometheus_multiproc_dir"]
        )
        == "PROMETHEUS_MULTIPROC_DIR"
    )
