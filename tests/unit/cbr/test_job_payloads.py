"""Job payloads: what producers store is what handlers read, and a job queued by an older
process (a field it lacked, or one no longer read) still runs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from opencbr.cbr.jobs.payloads import (
    BackupPayload,
    NbdRestorePayload,
    RestoredDisk,
    RestorePayload,
    ServerFromBackupPayload,
)


def test_a_payload_reads_back_what_its_producer_stored() -> None:
    payload = RestorePayload(
        backup_id="b",
        project_id="p",
        targets=[RestoredDisk(backup_id="b", disk_id="d", previous="in-use")],
        oplog_id="o",
    )
    stored = payload.model_dump(mode="json")
    assert stored == {
        "backup_id": "b",
        "project_id": "p",
        "targets": [{"backup_id": "b", "disk_id": "d", "previous": "in-use"}],
        "oplog_id": "o",
    }
    assert RestorePayload.model_validate(stored) == payload


def test_older_payloads_still_read() -> None:
    assert BackupPayload.model_validate({"backup_id": "b"}).oplog_id == ""
    nbd = {"backup_id": "b", "project_id": "p", "nbd_uri": "nbd://h/x", "oplog_id": "o"}
    assert NbdRestorePayload.model_validate(nbd).tls_psk_file == ""
    server = {
        "backup_id": "b",
        "server_id": "s",
        "project_id": "p",
        "targets": [{"backup_id": "c", "disk_id": "d", "unused": 1}],
    }
    assert ServerFromBackupPayload.model_validate(server).targets[0].disk_id == "d"


def test_a_payload_missing_what_its_handler_needs_is_refused() -> None:
    with pytest.raises(ValidationError):
        RestorePayload.model_validate({"backup_id": "b", "project_id": "p"})
