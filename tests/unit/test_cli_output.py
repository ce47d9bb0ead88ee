"""What the CLI prints for people: whole ids at any width, pages, progress without a terminal."""

from __future__ import annotations

import io
import uuid

import pytest
from rich.console import Console

from opencbr.cli import output, progress


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> Console:
    """An 80-column console without a terminal, recording what is printed."""
    recorder = Console(width=80, record=True, file=io.StringIO())
    monkeypatch.setattr(output, "console", recorder)
    return recorder


def test_ids_are_never_cut_the_last_columns_go_first(narrow: Console) -> None:
    backup_id, vault_id = str(uuid.uuid4()), uuid.uuid4().hex
    row = {
        "id": backup_id,
        "name": "nightly-backup-of-the-web-server",
        "status": "available",
        "size": "1 GB",
        "created_at": "2026-12-07T22:00:00Z",
        "vault_id": vault_id,
    }
    output.print_rows([row], list(row), False, title="Backups")
    text = narrow.export_text()
    assert backup_id in text
    assert "…" not in text
    assert "status" in text
    assert "created_at" not in text  # dropped, last columns first: the id leaves no room
    assert vault_id not in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_wide_enough_tables_keep_every_column(narrow: Console) -> None:
    row = {"id": str(uuid.uuid4()), "name": "web", "status": "available"}
    output.print_rows([row], list(row), False)
    text = narrow.export_text()
    assert all(value in text for value in row.values())


def test_page_note_says_which_rows_and_how_to_page(narrow: Console) -> None:
    output.print_page_note(50, 0, 120)
    output.print_page_note(20, 100, 120)
    output.print_page_note(0, 0, 0)
    lines = narrow.export_text().splitlines()
    assert lines == [
        "1-50 of 120; next page: --offset 50 (and --limit)",
        "101-120 of 120",
        "none found",
    ]


def test_new_id_stands_on_its_own_line(narrow: Console) -> None:
    new_id = str(uuid.uuid4())
    output.print_new_id("vault", new_id)
    assert narrow.export_text() == f"vault id: {new_id}\n"


def test_without_a_terminal_progress_is_periodic_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Console(width=80, record=True, file=io.StringIO())
    monkeypatch.setattr(progress, "err_console", recorder)
    bar = progress.progress("{task.description}")
    assert isinstance(bar, progress.LineProgress)
    bar = progress.LineProgress(interval=0.0)  # every update prints
    with bar:
        task = bar.add_task("backup", total=200)
        bar.update(task, completed=50)
        bar.advance(task, 50)
    assert recorder.export_text().splitlines() == ["backup: 25%", "backup: 50%", "backup: 50%"]


def test_quiet_between_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Console(width=80, record=True, file=io.StringIO())
    monkeypatch.setattr(progress, "err_console", recorder)
    with progress.LineProgress(interval=3600.0) as bar:
        task = bar.add_task("import", total=10)
        for _ in range(10):
            bar.advance(task, 1)
    assert recorder.export_text().splitlines() == ["import: 100%"]
