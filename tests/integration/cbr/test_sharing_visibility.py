"""Who sees what (S1, S5, S12, S14): every actor x (list, show, act) for backups, members and
vaults, on real SQLite and PostgreSQL.

Actors: the owner; members pending, accepted and rejected; an outsider of the owner's account
(another project in the region); an outsider of another account; the owner's account in
another region. Acts run in a unit of work that is rolled back, so every cell sees the same
world. A cell is "ok", "-" (not listed) or the error code of the refusal.
"""

from __future__ import annotations

from opencbr.cbr import backups, deletion, members, vaults
from tests.integration.cbr.sharing_fixtures import SharingWorld, attempt, run

ACTORS = (
    "owner",
    "pending",
    "accepted",
    "rejected",
    "same_account",
    "other_account",
    "other_region",
)
NOT_FOUND = "BackupService.6200"
NOT_OWNER = "BackupService.6707"
NO_MEMBER = "BackupService.6705"
NO_VAULT = "BackupService.6105"


def _listed(ids: list[str], wanted: str) -> str:
    return "ok" if wanted in ids else "-"


def test_s14_backup_visibility_matrix(world: SharingWorld) -> None:
    rt, backup_id = world.runtime, world.backup_id
    seen: dict[str, tuple[str, ...]] = {}
    for name, who in world.actors().items():
        granted = run(
            rt, backups.list_backups, who.actor, backups.BackupFilters(own_type="all_granted")
        )
        private = run(rt, backups.list_backups, who.actor, backups.BackupFilters())
        seen[name] = (
            _listed([b.id for b in granted.backups], backup_id),
            _listed([b.id for b in private.backups], backup_id),
            attempt(rt, backups.visible_backup, who.actor, backup_id),
            attempt(rt, backups.rename_backup, who.actor, backup_id, "renamed"),
            attempt(rt, deletion.delete_backup, who.actor, backup_id),
        )
    # A member may not delete the owner's backup: a clear refusal (it rejects the share instead).
    member = ("ok", "-", "ok", NOT_FOUND, "BackupService.6711")
    outsider = ("-", "-", NOT_FOUND, NOT_FOUND, NOT_FOUND)
    assert seen == {
        "owner": ("ok", "ok", "ok", "ok", "ok"),
        "pending": member,
        "accepted": member,
        "rejected": member,
        "same_account": outsider,
        "other_account": outsider,
        "other_region": outsider,
    }


def test_s14_member_visibility_matrix(world: SharingWorld) -> None:
    rt, backup_id = world.runtime, world.backup_id
    pending_id = world.pending.project_id
    seen: dict[str, tuple[str, ...]] = {}
    for name, who in world.actors().items():
        seen[name] = (
            attempt(rt, members.list_members, who.actor, backup_id, members.MemberFilters()),
            attempt(rt, members.find_member, who.actor, backup_id, pending_id),
            attempt(rt, members.find_member, who.actor, backup_id, who.project_id),
            attempt(rt, members.update_member_status, who.actor, backup_id, pending_id, "rejected"),
            attempt(rt, members.delete_member, who.actor, backup_id, pending_id),
        )
    other_member = (NOT_OWNER, NO_MEMBER, "ok", NO_MEMBER, NOT_OWNER)
    outsider = (NOT_FOUND,) * 5
    assert seen == {
        # The owner is no member of its own backup: its own project id names no member.
        "owner": ("ok", "ok", NO_MEMBER, NOT_OWNER, "ok"),
        "pending": (NOT_OWNER, "ok", "ok", "ok", NOT_OWNER),
        "accepted": other_member,
        "rejected": other_member,
        "same_account": outsider,
        "other_account": outsider,
        "other_region": outsider,
    }


def test_s14_vault_visibility_matrix(world: SharingWorld) -> None:
    rt = world.runtime
    seen: dict[str, tuple[str, ...]] = {}
    for name, who in world.actors().items():
        listed, _ = run(rt, vaults.list_vaults, who.actor, vaults.VaultFilters())
        ids = [v.id for v in listed]
        row: list[str] = []
        for vault_id in (world.owner_vault, world.accepted_vault):
            row += [
                _listed(ids, vault_id),
                attempt(rt, vaults.get_vault, who.actor, vault_id),
                attempt(rt, vaults.update_vault, who.actor, vault_id, vaults.VaultUpdate(name="x")),
            ]
        seen[name] = tuple(row)
    nobody = ("-", NO_VAULT, NO_VAULT)
    assert seen == {
        "owner": ("ok", "ok", "ok", *nobody),
        "pending": nobody * 2,
        "accepted": (*nobody, "ok", "ok", "ok"),
        "rejected": nobody * 2,
        "same_account": nobody * 2,
        "other_account": nobody * 2,
        "other_region": nobody * 2,
    }


def test_s14_accepted_share_is_listed_in_the_recipients_vault_only(world: SharingWorld) -> None:
    rt, backup_id = world.runtime, world.backup_id
    seen = {}
    for name, who in world.actors().items():
        found = run(
            rt,
            backups.list_backups,
            who.actor,
            backups.BackupFilters(own_type="all_granted", vault_id=world.accepted_vault),
        ).backups
        seen[name] = _listed([b.id for b in found], backup_id)
    assert seen == {name: "ok" if name == "accepted" else "-" for name in ACTORS}


def test_s14_recipient_cannot_probe_the_owners_vault_id(world: SharingWorld) -> None:
    found = run(
        world.runtime,
        backups.list_backups,
        world.pending.actor,
        backups.BackupFilters(own_type="shared", vault_id=world.owner_vault),
    )
    assert found.backups == []
