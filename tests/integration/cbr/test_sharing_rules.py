"""The sharing rules S1-S15, one or more tests each, on real SQLite and PostgreSQL.

Backups are stored backup records (see `sharing_fixtures`); the data plane is not involved.
Every refusal is checked for its reference error code and for having changed nothing.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from opencbr.cbr import backups, deletion, members, oplogs, vaults
from opencbr.cbr.catalogue import CATALOGUE_JOB
from opencbr.cbr.models import Backup, GiB, Member, OperationLog
from opencbr.cbr.views import oplog_view
from opencbr.core.context import Runtime
from opencbr.core.errors import AppError
from opencbr.core.jobs import Job
from tests.conftest import TenantFactory
from tests.integration.cbr.sharing_fixtures import (
    SERVER,
    MiB,
    Party,
    SharingWorld,
    code_of,
    extra_project,
    make_vault,
    member_row,
    party,
    run,
    set_status,
    stored_backup,
    vault_row,
)


def _shared(runtime: Runtime, make_tenant: TenantFactory, **backup: object) -> tuple[Party, str]:
    owner = party(runtime, make_tenant())
    return owner, stored_backup(runtime, owner, make_vault(runtime, owner), **backup)  # type: ignore[arg-type]


def _member_count(runtime: Runtime, backup_id: str) -> int:
    with runtime.database.unit_of_work() as session:
        return (
            session.scalar(
                select(func.count()).select_from(Member).where(Member.backup_id == backup_id)
            )
            or 0
        )


def _add(runtime: Runtime, owner: Party, backup_id: str, *projects: str) -> list[Member]:
    return run(runtime, members.add_members, owner.actor, backup_id, list(projects))


def _accept_code(runtime: Runtime, who: Party, backup_id: str, vault_id: str) -> str:
    """The error code accepting `backup_id` into `vault_id` answers (the test fails if none)."""
    return code_of(
        runtime,
        members.update_member_status,
        who.actor,
        backup_id,
        who.project_id,
        "accepted",
        vault_id,
    )


def _shared_list(runtime: Runtime, who: Party, **filters: object) -> list[str]:
    """The ids listed; the listing's count must be their number (it is counted apart)."""
    page = run(
        runtime,
        backups.list_backups,
        who.actor,
        backups.BackupFilters(own_type="shared", **filters),  # type: ignore[arg-type]
    )
    found = page.backups
    assert page.count == len(found)
    # The caller's share of each shared backup comes with the page.
    assert sorted(page.memberships) == sorted(b.id for b in found)
    return [b.id for b in found]


# --- S1 owner only ----------------------------------------------------------------------------


def test_s1_only_the_owner_adds_lists_and_cancels(world: SharingWorld) -> None:
    rt, backup_id = world.runtime, world.backup_id
    third = party(rt, world.other_account.creds)
    for member in (world.pending, world.accepted, world.rejected):
        assert code_of(rt, members.add_members, member.actor, backup_id, [third.project_id]) == (
            "BackupService.6714"
        )
        assert (
            code_of(rt, members.list_members, member.actor, backup_id, members.MemberFilters())
            == "BackupService.6707"
        )
        assert (
            code_of(rt, members.delete_member, member.actor, backup_id, member.project_id)
            == "BackupService.6707"
        )
    for outsider in (world.same_account, world.other_account, world.other_region):
        assert (
            code_of(rt, members.add_members, outsider.actor, backup_id, [third.project_id])
            == "BackupService.6200"
        )
    assert _member_count(rt, backup_id) == 3
    assert vault_row(rt, world.accepted_vault).used_bytes == GiB // 4


def test_s1_received_backup_cannot_be_shared_on(world: SharingWorld) -> None:
    rt = world.runtime
    onward = extra_project(rt, world.accepted.creds)
    code = code_of(
        rt, members.add_members, world.accepted.actor, world.backup_id, [onward.project_id]
    )
    assert code == "BackupService.6714"
    assert member_row(rt, world.backup_id, onward.project_id) is None


# --- S2 what can be shared --------------------------------------------------------------------


def test_s2_disk_and_server_backups_can_be_shared(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    recipient = party(runtime, make_tenant())
    for kind in ("OS::Cinder::Volume", SERVER):
        owner, backup_id = _shared(runtime, make_tenant, resource_type=kind)
        added = _add(runtime, owner, backup_id, recipient.project_id)
        assert [(m.dest_project_id, m.status) for m in added] == [(recipient.project_id, "pending")]


def test_s2_backup_not_available_is_refused_and_nothing_added(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    recipient = party(runtime, make_tenant())
    for status in ("protecting", "error", "deleting", "restoring"):
        owner, backup_id = _shared(runtime, make_tenant, status=status)
        code = code_of(runtime, members.add_members, owner.actor, backup_id, [recipient.project_id])
        assert code == "BackupService.6702"
        assert _member_count(runtime, backup_id) == 0


def test_s2_a_backup_in_a_vault_being_deleted_is_neither_shared_nor_accepted(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    recipient, late = party(runtime, make_tenant()), party(runtime, make_tenant())
    owner = party(runtime, make_tenant())
    vault_id = make_vault(runtime, owner)
    backup_id = stored_backup(runtime, owner, vault_id)
    _add(runtime, owner, backup_id, recipient.project_id)
    run(runtime, vaults.delete_vault, owner.actor, vault_id)  # its job has not run yet
    refused = code_of(runtime, members.add_members, owner.actor, backup_id, [late.project_id])
    assert refused == "BackupService.6702"
    room = make_vault(runtime, recipient)
    refused = _accept_code(runtime, recipient, backup_id, room)
    assert refused == "BackupService.6702"
    assert _member_count(runtime, backup_id) == 1
    assert vault_row(runtime, room).used_bytes == 0


def test_s2_other_resource_types_and_child_backups_are_refused(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    recipient = party(runtime, make_tenant())
    owner, desktop = _shared(runtime, make_tenant, resource_type="OS::Workspace::DesktopV2")
    assert (
        code_of(runtime, members.add_members, owner.actor, desktop, [recipient.project_id])
        == "BackupService.6700"
    )
    owner, server_backup = _shared(runtime, make_tenant, resource_type=SERVER)
    with runtime.database.unit_of_work() as session:
        child = session.scalar(select(Backup.id).where(Backup.parent_id == server_backup))
    assert child is not None
    assert (
        code_of(runtime, members.add_members, owner.actor, child, [recipient.project_id])
        == "BackupService.6700"
    )
    assert _member_count(runtime, desktop) + _member_count(runtime, child) == 0


# --- S3 at most 10 ----------------------------------------------------------------------------


def test_s3_eleventh_member_is_refused_and_nothing_added(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner, backup_id = _shared(runtime, make_tenant)
    tenant = make_tenant()
    projects = [extra_project(runtime, tenant).project_id for _ in range(11)]
    _add(runtime, owner, backup_id, *projects[:4])
    _add(runtime, owner, backup_id, *projects[4:10])
    assert _member_count(runtime, backup_id) == 10
    code = code_of(runtime, members.add_members, owner.actor, backup_id, [projects[10]])
    assert code == "BackupService.6701"
    assert _member_count(runtime, backup_id) == 10
    assert member_row(runtime, backup_id, projects[10]) is None


def test_s3_add_is_all_or_nothing(runtime: Runtime, make_tenant: TenantFactory) -> None:
    owner, backup_id = _shared(runtime, make_tenant)
    tenant = make_tenant()
    projects = [extra_project(runtime, tenant).project_id for _ in range(11)]
    _add(runtime, owner, backup_id, *projects[:8])
    # 8 + 3 would pass 10: none of the three is added.
    code = code_of(runtime, members.add_members, owner.actor, backup_id, projects[8:11])
    assert code == "BackupService.6701"
    # One bad project among good ones: none is added.
    code = code_of(runtime, members.add_members, owner.actor, backup_id, [projects[8], "f" * 32])
    assert code == "BackupService.6704"
    assert _member_count(runtime, backup_id) == 8


def test_s3_a_request_names_one_to_ten(runtime: Runtime, make_tenant: TenantFactory) -> None:
    owner, backup_id = _shared(runtime, make_tenant)
    tenant = make_tenant()
    projects = [extra_project(runtime, tenant).project_id for _ in range(11)]
    # Too many in one request is S3's own refusal, as too many in total is.
    assert code_of(runtime, members.add_members, owner.actor, backup_id, projects) == (
        "BackupService.6701"
    )
    assert code_of(runtime, members.add_members, owner.actor, backup_id, []) == (
        "BackupService.9900"
    )
    assert _member_count(runtime, backup_id) == 0


# --- S4 same region ---------------------------------------------------------------------------


def test_s4_bad_destinations_are_refused_and_nothing_added(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner, backup_id = _shared(runtime, make_tenant)
    other = make_tenant()
    cases = {
        other.projects["region-2"]: "BackupService.6704",  # another region
        "0" * 32: "BackupService.6704",  # no such project
        "not-a-project": "BackupService.6704",  # malformed
        owner.project_id: "BackupService.6704",  # the owner's own project
    }
    for project_id, expected in cases.items():
        assert (
            code_of(runtime, members.add_members, owner.actor, backup_id, [project_id]) == expected
        ), project_id
    assert _member_count(runtime, backup_id) == 0


def test_s4_existing_member_and_repeated_project_are_refused(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner, backup_id = _shared(runtime, make_tenant)
    recipient, newcomer = party(runtime, make_tenant()), party(runtime, make_tenant())
    _add(runtime, owner, backup_id, recipient.project_id)
    code = code_of(
        runtime,
        members.add_members,
        owner.actor,
        backup_id,
        [newcomer.project_id, recipient.project_id],
    )
    assert code == "BackupService.6703"
    code = code_of(
        runtime,
        members.add_members,
        owner.actor,
        backup_id,
        [newcomer.project_id, newcomer.project_id],
    )
    assert code == "BackupService.9900"
    assert _member_count(runtime, backup_id) == 1


def _refusal(runtime: Runtime, fn: object, *args: object) -> AppError:
    with pytest.raises(AppError) as caught:
        run(runtime, fn, *args)  # type: ignore[arg-type]
    return caught.value


def test_s4_a_refusal_names_every_bad_project_not_only_the_first(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner, backup_id = _shared(runtime, make_tenant)
    good, member = party(runtime, make_tenant()), party(runtime, make_tenant())
    far = make_tenant().projects["region-2"]
    missing = "0" * 32
    add = members.add_members

    # Several bad projects among good ones: one 6704 names each, grouped by reason.
    error = _refusal(
        runtime, add, owner.actor, backup_id, [missing, good.project_id, "not-a-project", far]
    )
    assert error.code == "BackupService.6704"
    assert error.message == (
        f"Projects {missing}, not-a-project, {far} cannot receive this backup: "
        f"{missing}, {far}: no such project in region region-1; "
        f"not-a-project: {members.MALFORMED_RECIPIENT}."
    )
    # Two for one reason read as one sentence; a single one as the error's own template.
    error = _refusal(runtime, add, owner.actor, backup_id, [missing, far])
    assert error.message == (
        f"Projects {missing}, {far} cannot receive this backup: no such project in region region-1."
    )
    error = _refusal(runtime, add, owner.actor, backup_id, [owner.project_id])
    assert error.message == (
        f"Project {owner.project_id} cannot receive this backup: it owns the backup."
    )

    # Every project that is a member already is named too (6703).
    _add(runtime, owner, backup_id, member.project_id)
    error = _refusal(runtime, add, owner.actor, backup_id, [member.project_id, good.project_id])
    assert error.code == "BackupService.6703"
    assert member.project_id in error.message
    assert _member_count(runtime, backup_id) == 1


def test_s4_a_recipient_format_is_checked_without_reading_anything() -> None:
    members.check_recipient_format("0123456789abcdef0123456789abcdef")
    for malformed in ("not-a-project", "0123456789ABCDEF0123456789ABCDEF", "0" * 31, ""):
        with pytest.raises(AppError) as caught:
            members.check_recipient_format(malformed)
        assert caught.value.code == "BackupService.6704"
        assert caught.value.message == (
            f"Project {malformed} cannot receive this backup: {members.MALFORMED_RECIPIENT}."
        )


def test_s4_sharing_with_an_account_reaches_its_projects_in_the_region(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner, backup_id = _shared(runtime, make_tenant)
    account = make_tenant()
    sub = extra_project(runtime, account)
    added = run(runtime, members.add_members, owner.actor, backup_id, [], [account.domain_id])
    assert {m.dest_project_id for m in added} == {account.projects["region-1"], sub.project_id}
    # Again: nothing new to add.
    code = code_of(runtime, members.add_members, owner.actor, backup_id, [], [account.domain_id])
    assert code == "BackupService.6703"
    # An account without a project in the region, or no account at all.
    far = make_tenant(regions=("region-2",))
    for domain_id in (far.domain_id, "0" * 32):
        code = code_of(runtime, members.add_members, owner.actor, backup_id, [], [domain_id])
        assert code == "BackupService.6704"
    assert _member_count(runtime, backup_id) == 2
    # Each project of the account decides on its own.
    set_status(runtime, sub, backup_id, "rejected")
    assert _shared_list(runtime, party(runtime, account), member_status="pending") == [backup_id]


# --- S5 recipient decides ---------------------------------------------------------------------


def test_s5_only_the_recipient_changes_its_status(world: SharingWorld) -> None:
    rt, backup_id = world.runtime, world.backup_id
    update = members.update_member_status
    pending_id = world.pending.project_id
    # The owner, another member, and outsiders cannot decide for the pending member.
    assert code_of(rt, update, world.owner.actor, backup_id, pending_id, "rejected") == (
        "BackupService.6707"
    )
    assert code_of(rt, update, world.accepted.actor, backup_id, pending_id, "rejected") == (
        "BackupService.6705"
    )
    for outsider in (world.same_account, world.other_account, world.other_region):
        assert code_of(rt, update, outsider.actor, backup_id, pending_id, "rejected") == (
            "BackupService.6200"
        )
    row = member_row(rt, backup_id, pending_id)
    assert row is not None
    assert row.status == "pending"


def test_s5_recipient_can_change_its_mind(world: SharingWorld) -> None:
    rt, who, backup_id = world.runtime, world.rejected, world.backup_id
    vault_id = make_vault(rt, who)
    assert set_status(rt, who, backup_id, "accepted", vault_id).vault_id == vault_id
    assert vault_row(rt, vault_id).used_bytes == GiB // 4
    assert set_status(rt, who, backup_id, "rejected").vault_id is None
    assert vault_row(rt, vault_id).used_bytes == 0
    assert set_status(rt, who, backup_id, "pending").status == "pending"
    assert set_status(rt, who, backup_id, "pending").status == "pending"  # no-op
    # Moving an accepted share to another vault moves its space.
    second = make_vault(rt, who)
    set_status(rt, who, backup_id, "accepted", vault_id)
    set_status(rt, who, backup_id, "accepted", second)
    assert (vault_row(rt, vault_id).used_bytes, vault_row(rt, second).used_bytes) == (0, GiB // 4)
    # Accepting again into the same vault reserves nothing more.
    set_status(rt, who, backup_id, "accepted", second)
    assert vault_row(rt, second).used_bytes == GiB // 4


def test_s5_status_outside_the_enum_is_refused(world: SharingWorld) -> None:
    rt, who = world.runtime, world.pending
    for status in ("approved", "", "ACCEPTED", "deleted"):
        code = code_of(
            rt, members.update_member_status, who.actor, world.backup_id, who.project_id, status
        )
        assert code == "BackupService.6706", status
    row = member_row(rt, world.backup_id, who.project_id)
    assert row is not None
    assert row.status == "pending"


# --- S6 accepting needs room ------------------------------------------------------------------


def test_s6_bad_vaults_are_refused_and_nothing_changes(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner, backup_id = _shared(runtime, make_tenant, size_bytes=GiB)
    recipient_creds = make_tenant()
    recipient = party(runtime, recipient_creds)
    _add(runtime, owner, backup_id, recipient.project_id)
    update = members.update_member_status
    pid = recipient.project_id
    # No vault at all: vault_id is required (the message says to create one).
    assert code_of(runtime, update, recipient.actor, backup_id, pid, "accepted") == (
        "BackupService.6706"
    )
    cases = {
        make_vault(runtime, owner): "BackupService.6105",  # another project's vault
        make_vault(runtime, party(runtime, recipient_creds, "region-2")): "BackupService.6105",
        make_vault(runtime, recipient, "server"): "BackupService.6713",  # wrong type
        make_vault(runtime, recipient, size_gb=1): "BackupService.6114",  # free == size
        "not-a-vault": "BackupService.6105",
    }
    for vault_id, expected in cases.items():
        code = code_of(runtime, update, recipient.actor, backup_id, pid, "accepted", vault_id)
        assert code == expected, vault_id
    row = member_row(runtime, backup_id, pid)
    assert row is not None
    assert (row.status, row.vault_id, row.reserved_bytes) == ("pending", None, 0)
    for vault_id in list(cases)[:4]:
        assert vault_row(runtime, vault_id).used_bytes == 0


def test_s6_free_space_must_be_greater_than_the_backup(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    recipient = party(runtime, make_tenant())
    vault_id = make_vault(runtime, recipient, size_gb=1)
    owner, just_under = _shared(runtime, make_tenant, size_bytes=GiB - 1)
    _add(runtime, owner, just_under, recipient.project_id)
    set_status(runtime, recipient, just_under, "accepted", vault_id)
    assert vault_row(runtime, vault_id).used_bytes == GiB - 1
    # One byte left: a one-byte backup does not fit (free must be greater than the size).
    owner2, one_byte = _shared(runtime, make_tenant, size_bytes=1)
    _add(runtime, owner2, one_byte, recipient.project_id)
    code = _accept_code(runtime, recipient, one_byte, vault_id)
    assert code == "BackupService.6114"
    # What the console offers follows the same rule: the full vault is shown, not choosable;
    # a vault with room is; a server vault is not shown for a disk backup.
    roomy = make_vault(runtime, recipient, size_gb=1)
    make_vault(runtime, recipient, "server")
    backup = run(runtime, backups.visible_backup, recipient.actor, one_byte)
    choices = run(runtime, members.accept_choices, recipient.actor, backup)
    assert [(c.vault.id, c.free, c.fits) for c in choices] == [
        (vault_id, 1, False),
        (roomy, GiB, True),
    ]


def test_s6_server_backup_goes_into_a_server_vault_at_its_full_size(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner, backup_id = _shared(runtime, make_tenant, resource_type=SERVER, size_bytes=300 * MiB)
    recipient = party(runtime, make_tenant())
    _add(runtime, owner, backup_id, recipient.project_id)
    disk_vault = make_vault(runtime, recipient, "disk")
    server_vault = make_vault(runtime, recipient, "server")
    code = _accept_code(runtime, recipient, backup_id, disk_vault)
    assert code == "BackupService.6713"
    set_status(runtime, recipient, backup_id, "accepted", server_vault)
    assert vault_row(runtime, server_vault).used_bytes == 300 * MiB


# --- S7 what accepting gives ------------------------------------------------------------------


def test_s7_accepted_backup_is_listed_in_the_vault_and_copies_no_data(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner, backup_id = _shared(runtime, make_tenant, size_bytes=700 * MiB)
    recipient = party(runtime, make_tenant())
    vault_id = make_vault(runtime, recipient)
    _add(runtime, owner, backup_id, recipient.project_id)
    # Accepting writes the backup's catalogue record (a job); it copies no data.
    _data_jobs = select(func.count()).select_from(Job).where(Job.kind != CATALOGUE_JOB)
    with runtime.database.unit_of_work() as session:
        before = (
            session.scalar(select(func.count()).select_from(Backup)),
            session.scalar(_data_jobs),
        )
    set_status(runtime, recipient, backup_id, "accepted", vault_id)
    with runtime.database.unit_of_work() as session:
        after = (
            session.scalar(select(func.count()).select_from(Backup)),
            session.scalar(_data_jobs),
        )
    assert after == before  # no backup row, no copy job
    assert _shared_list(runtime, recipient, member_status="accepted") == [backup_id]
    assert _shared_list(runtime, recipient, vault_id=vault_id) == [backup_id]
    found = run(
        runtime,
        backups.list_backups,
        recipient.actor,
        backups.BackupFilters(own_type="all_granted", vault_id=vault_id),
    )
    assert [b.id for b in found.backups] == [backup_id]
    assert found.memberships == {backup_id: backups.Membership("accepted", vault_id)}
    assert vault_row(runtime, vault_id).used_bytes == 700 * MiB
    assert run(runtime, backups.visible_backup, recipient.actor, backup_id).id == backup_id


# --- S8 cancel sharing ------------------------------------------------------------------------


def test_s8_cancel_removes_the_share_and_frees_the_space(world: SharingWorld) -> None:
    rt, backup_id, who = world.runtime, world.backup_id, world.accepted
    run(rt, members.delete_member, world.owner.actor, backup_id, who.project_id)
    assert vault_row(rt, world.accepted_vault).used_bytes == 0
    assert _shared_list(rt, who) == []
    assert code_of(rt, backups.visible_backup, who.actor, backup_id) == "BackupService.6200"
    # Cancelling by the member's own id works too; an unknown member is 6705.
    pending = member_row(rt, backup_id, world.pending.project_id)
    assert pending is not None
    run(rt, members.delete_member, world.owner.actor, backup_id, pending.id)
    assert code_of(
        rt, members.delete_member, world.owner.actor, backup_id, world.pending.project_id
    ) == ("BackupService.6705")
    assert _member_count(rt, backup_id) == 1  # the rejected one


# --- S9 delete cascades -----------------------------------------------------------------------


def test_s9_deleting_the_backup_takes_it_from_every_recipient(world: SharingWorld) -> None:
    rt, backup_id = world.runtime, world.backup_id
    run(rt, deletion.delete_backup, world.owner.actor, backup_id)
    assert _member_count(rt, backup_id) == 0
    assert vault_row(rt, world.accepted_vault).used_bytes == 0
    for who in (world.pending, world.accepted, world.rejected):
        assert _shared_list(rt, who) == []
        assert code_of(rt, backups.visible_backup, who.actor, backup_id) == "BackupService.6200"
    assert run(rt, backups.visible_backup, world.owner.actor, backup_id).status == "deleting"
    # A deleted backup can no longer be shared.
    code = code_of(
        rt, members.add_members, world.owner.actor, backup_id, [world.pending.project_id]
    )
    assert code == "BackupService.6702"


# --- S12 shared with me -----------------------------------------------------------------------


def test_s12_recipient_lists_shares_in_every_status(world: SharingWorld) -> None:
    rt, backup_id = world.runtime, world.backup_id
    for who, status in (
        (world.pending, "pending"),
        (world.accepted, "accepted"),
        (world.rejected, "rejected"),
    ):
        assert _shared_list(rt, who) == [backup_id]
        assert _shared_list(rt, who, member_status=status) == [backup_id]
        other = "accepted" if status != "accepted" else "pending"
        assert _shared_list(rt, who, member_status=other) == []
        assert _shared_list(rt, who, resource_type="OS::Cinder::Volume") == [backup_id]
        assert _shared_list(rt, who, name="no such name") == []
        mine = run(rt, backups.list_backups, who.actor, backups.BackupFilters())
        assert backup_id not in [b.id for b in mine.backups]  # own_type=private: own backups only


# --- S13 automatic association ----------------------------------------------------------------


def test_s13_accept_can_switch_on_auto_bind(runtime: Runtime, make_tenant: TenantFactory) -> None:
    owner, first = _shared(runtime, make_tenant)
    second = stored_backup(runtime, owner, make_vault(runtime, owner))
    recipient = party(runtime, make_tenant())
    plain, bound = make_vault(runtime, recipient), make_vault(runtime, recipient)
    _add(runtime, owner, first, recipient.project_id)
    _add(runtime, owner, second, recipient.project_id)
    set_status(runtime, recipient, first, "accepted", plain)
    assert vault_row(runtime, plain).auto_bind is False
    set_status(runtime, recipient, second, "accepted", bound, auto_bind=True)
    assert vault_row(runtime, bound).auto_bind is True
    assert vault_row(runtime, plain).auto_bind is False


# --- S15 audit --------------------------------------------------------------------------------


def _share_actions(runtime: Runtime, who: Party) -> list[str]:
    logs, _ = run(
        runtime,
        oplogs.list_oplogs,
        who.actor,
        oplogs.OpLogFilters(operation_type="share"),
    )
    return sorted(log.extra_info["share"]["action"] for log in logs)


def test_s15_every_share_action_is_logged_for_both_sides(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner, backup_id = _shared(runtime, make_tenant)
    one, two = party(runtime, make_tenant()), party(runtime, make_tenant())
    vault_id = make_vault(runtime, one)
    _add(runtime, owner, backup_id, one.project_id, two.project_id)
    set_status(runtime, one, backup_id, "accepted", vault_id)
    set_status(runtime, two, backup_id, "rejected")
    run(runtime, members.delete_member, owner.actor, backup_id, two.project_id)
    run(runtime, deletion.delete_backup, owner.actor, backup_id)
    assert _share_actions(runtime, one) == ["accept", "add", "cascade-delete"]
    assert _share_actions(runtime, two) == ["add", "cancel", "reject"]
    assert _share_actions(runtime, owner) == sorted(
        ["add", "add", "accept", "reject", "cancel", "cascade-delete"]
    )
    with runtime.database.unit_of_work() as session:
        accept = session.scalars(
            select(OperationLog).where(
                OperationLog.project_id == one.project_id, OperationLog.vault_id == vault_id
            )
        ).all()
    assert {log.extra_info["share"]["action"] for log in accept} == {"accept", "cascade-delete"}
    assert all(log.status == "success" for log in accept)
    # A refused action leaves no log.
    before = len(_share_actions(runtime, owner))
    code_of(runtime, members.add_members, owner.actor, backup_id, [one.project_id])
    assert len(_share_actions(runtime, owner)) == before


def test_s15_the_owners_log_never_names_the_recipients_vault(world: SharingWorld) -> None:
    """The owner learns who accepted, never into which of its vaults (S14 for vaults)."""
    rt = world.runtime
    run(rt, members.delete_member, world.owner.actor, world.backup_id, world.accepted.project_id)
    owner_logs, _ = run(
        rt, oplogs.list_oplogs, world.owner.actor, oplogs.OpLogFilters(operation_type="share")
    )
    actions = {log.extra_info["share"]["action"] for log in owner_logs}
    assert {"accept", "cancel"} <= actions
    for log in owner_logs:
        assert world.accepted_vault not in json.dumps(oplog_view(log))
    recipient_logs, _ = run(
        rt, oplogs.list_oplogs, world.accepted.actor, oplogs.OpLogFilters(operation_type="share")
    )
    accepted = [log for log in recipient_logs if log.extra_info["share"]["action"] == "accept"]
    assert [log.extra_info["share"]["vault_id"] for log in accepted] == [world.accepted_vault]


def test_s15_recipient_reads_its_log_but_not_the_owners(world: SharingWorld) -> None:
    rt = world.runtime
    logs, _ = run(
        rt, oplogs.list_oplogs, world.owner.actor, oplogs.OpLogFilters(operation_type="share")
    )
    assert logs
    for log in logs:
        assert code_of(rt, oplogs.get_oplog, world.accepted.actor, log.id) == "BackupService.6500"


def test_vault_holding_an_accepted_share_cannot_be_deleted(world: SharingWorld) -> None:
    rt = world.runtime
    code = code_of(rt, vaults.delete_vault, world.accepted.actor, world.accepted_vault)
    assert code == "BackupService.6111"
    set_status(rt, world.accepted, world.backup_id, "rejected")
    run(rt, vaults.delete_vault, world.accepted.actor, world.accepted_vault)
