"""The KMS interface other slices use, on real SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opencbr.core.clock import utcnow
from opencbr.core.context import Actor, Runtime
from opencbr.core.secrets import SealedDataCorrupt
from opencbr.iam import service as iam
from opencbr.iam.service import TenantCredentials
from opencbr.kms import grants, keys
from opencbr.kms import service as kms
from opencbr.kms.access import master_key
from opencbr.kms.errors import (
    CipherTextInvalid,
    DefaultKeyRefused,
    InvalidGrantId,
    InvalidKeyId,
    KeyAccessDenied,
    KeyDisabled,
    KeyNotFound,
    KeyPendingDeletion,
    KmsValidationFailed,
    TooManyGrants,
)
from opencbr.kms.models import Grant, Key, KeyState
from tests.conftest import TenantFactory


def actor_of(runtime: Runtime, creds: TenantCredentials, region: str = "region-1") -> Actor:
    with runtime.database.unit_of_work() as session:
        user_id = iam.list_users(session, creds.domain_id)[0].id
    return Actor(creds.domain_id, user_id, creds.projects[region], region)


def new_key(runtime: Runtime, actor: Actor, alias: str = "k") -> str:
    with runtime.database.unit_of_work() as session:
        return keys.create_key(session, runtime.root_key, actor, alias).id


def test_owner_round_trip_and_material_sealed(runtime: Runtime, make_tenant: TenantFactory) -> None:
    owner = actor_of(runtime, make_tenant())
    key_id = new_key(runtime, owner)
    with runtime.database.unit_of_work() as session:
        made = kms.generate_data_key(session, runtime.root_key, owner, key_id)
        again = kms.wrap_data_key(session, runtime.root_key, owner, key_id, made.plaintext)
        key = session.get(Key, key_id)
        assert key is not None
        master = master_key(runtime.root_key, key)
    assert len(made.plaintext) == 32
    assert master not in key.material_sealed
    with runtime.database.unit_of_work() as session:
        for wrapped in (made.wrapped, again):
            assert kms.unwrap_data_key(session, runtime.root_key, owner, key_id, wrapped) == (
                made.plaintext
            )


def test_sealed_material_is_bound_to_its_key(runtime: Runtime, make_tenant: TenantFactory) -> None:
    owner = actor_of(runtime, make_tenant())
    first, second = new_key(runtime, owner, "a"), new_key(runtime, owner, "b")
    with runtime.database.unit_of_work() as session:
        a, b = session.get(Key, first), session.get(Key, second)
        assert a is not None
        assert b is not None
        b.material_sealed = a.material_sealed
        with pytest.raises(SealedDataCorrupt):
            master_key(runtime.root_key, b)
        session.rollback()


def test_grant_lets_another_account_decrypt_and_nothing_else(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = actor_of(runtime, make_tenant())
    recipient = actor_of(runtime, make_tenant())
    key_id = new_key(runtime, owner)
    with runtime.database.unit_of_work() as session:
        made = kms.generate_data_key(session, runtime.root_key, owner, key_id)
    with (
        pytest.raises(KeyNotFound) as hidden,
        runtime.database.unit_of_work() as session,
    ):  # no grant at all: the key answers like a missing one (S14)
        kms.unwrap_data_key(session, runtime.root_key, recipient, key_id, made.wrapped)
    assert str(hidden.value) == f"KMS key {key_id} not found in this region."
    with runtime.database.unit_of_work() as session:
        grants.create_grant(
            session, owner, key_id, recipient.domain_id, ["decrypt-datakey"], "domain"
        )
    with runtime.database.unit_of_work() as session:
        opened = kms.unwrap_data_key(session, runtime.root_key, recipient, key_id, made.wrapped)
        assert opened == made.plaintext
        with pytest.raises(KeyAccessDenied) as denied:
            kms.generate_data_key(session, runtime.root_key, recipient, key_id)
    assert str(denied.value) == (
        f"KMS key {key_id} of another account: no grant gives account {recipient.domain_id} "
        "the create-datakey operation."
    )


def test_user_grant_covers_only_that_user(runtime: Runtime, make_tenant: TenantFactory) -> None:
    owner = actor_of(runtime, make_tenant())
    other = actor_of(runtime, make_tenant())
    key_id = new_key(runtime, owner)
    with runtime.database.unit_of_work() as session:
        grants.create_grant(session, owner, key_id, other.user_id, ["create-datakey"], "user")
    with runtime.database.unit_of_work() as session:
        kms.generate_data_key(session, runtime.root_key, other, key_id)
        job = Actor(other.domain_id, "", other.project_id, other.region)
        with pytest.raises(KeyNotFound):  # the grant is the user's; the job holds none
            kms.check_key_usable(session, job, key_id, "create-datakey")


def test_disabled_and_pending_keys_refuse_every_use(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = actor_of(runtime, make_tenant())
    key_id = new_key(runtime, owner)
    with runtime.database.unit_of_work() as session:
        made = kms.generate_data_key(session, runtime.root_key, owner, key_id)
        keys.disable_key(session, owner, key_id)
    with pytest.raises(KeyDisabled), runtime.database.unit_of_work() as session:
        kms.unwrap_data_key(session, runtime.root_key, owner, key_id, made.wrapped)
    with runtime.database.unit_of_work() as session:
        keys.schedule_deletion(session, owner, key_id, "7")
    with pytest.raises(KeyPendingDeletion), runtime.database.unit_of_work() as session:
        kms.generate_data_key(session, runtime.root_key, owner, key_id)
    with runtime.database.unit_of_work() as session:
        keys.cancel_deletion(session, owner, key_id)
        keys.enable_key(session, owner, key_id)
        assert kms.unwrap_data_key(session, runtime.root_key, owner, key_id, made.wrapped)


def test_keys_are_destroyed_when_their_deletion_date_passes(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = actor_of(runtime, make_tenant())
    grantee = make_tenant().domain_id
    doomed, kept, cancelled = (new_key(runtime, owner, alias) for alias in ("d", "k", "c"))
    with runtime.database.unit_of_work() as session:
        made = kms.generate_data_key(session, runtime.root_key, owner, doomed)
        grants.create_grant(session, owner, doomed, grantee, ["decrypt-datakey"], "domain")
        for key_id in (doomed, cancelled):
            keys.schedule_deletion(session, owner, key_id, "7")
        keys.cancel_deletion(session, owner, cancelled)
    scheduled = utcnow()
    # The database may hold other tests' keys pending deletion: look only at these three.
    mine = {doomed, kept, cancelled}
    with runtime.database.unit_of_work() as session:
        early = keys.purge_due_keys(session, scheduled + timedelta(days=6, hours=23))
        assert mine.isdisjoint(early)
    with runtime.database.unit_of_work() as session:
        due = keys.purge_due_keys(session, scheduled + timedelta(days=7, minutes=1))
        assert mine.intersection(due) == {doomed}
    with runtime.database.unit_of_work() as session:
        assert session.get(Key, doomed) is None
        assert session.scalar(select(func.count()).where(Grant.key_id == doomed)) == 0
        assert {session.get(Key, kept) is None, session.get(Key, cancelled) is None} == {False}
        with pytest.raises(KeyNotFound, match=doomed):
            kms.unwrap_data_key(session, runtime.root_key, owner, doomed, made.wrapped)


def test_keys_are_regional_and_wrapped_keys_bound(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    owner, other_region = actor_of(runtime, creds), actor_of(runtime, creds, "region-2")
    key_a, key_b = new_key(runtime, owner, "a"), new_key(runtime, owner, "b")
    with runtime.database.unit_of_work() as session:
        made = kms.generate_data_key(session, runtime.root_key, owner, key_a)
        with pytest.raises(CipherTextInvalid, match=key_b):
            kms.unwrap_data_key(session, runtime.root_key, owner, key_b, made.wrapped)
        with pytest.raises(KeyNotFound):
            kms.check_key_usable(session, other_region, key_a, "describe-key")


def test_default_disk_key_once_per_project(runtime: Runtime, make_tenant: TenantFactory) -> None:
    creds = make_tenant()
    owner, other_region = actor_of(runtime, creds), actor_of(runtime, creds, "region-2")
    with runtime.database.unit_of_work() as session:
        first = kms.default_disk_key(session, runtime.root_key, owner)
    with runtime.database.unit_of_work() as session:
        assert kms.default_disk_key(session, runtime.root_key, owner).id == first.id
        assert kms.default_disk_key(session, runtime.root_key, other_region).id != first.id
        assert first.default_key
        assert first.alias == "evs/default"
        with pytest.raises(DefaultKeyRefused):
            grants.create_grant(
                session, owner, first.id, other_region.domain_id, ["describe-key"], "domain"
            )
        with pytest.raises(DefaultKeyRefused):
            keys.schedule_deletion(session, owner, first.id, "7")


def test_grant_limit_is_held_and_refusal_changes_nothing(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = actor_of(runtime, make_tenant())
    grantee = make_tenant().domain_id
    key_id = new_key(runtime, owner)
    with runtime.database.unit_of_work() as session:
        for _ in range(grants.MAX_GRANTS_PER_KEY):
            grants.create_grant(session, owner, key_id, grantee, ["describe-key"], "domain")
    with pytest.raises(TooManyGrants), runtime.database.unit_of_work() as session:
        grants.create_grant(session, owner, key_id, grantee, ["describe-key"], "domain")
    with runtime.database.unit_of_work() as session:
        count = session.scalar(select(func.count()).where(Grant.key_id == key_id))
    assert count == grants.MAX_GRANTS_PER_KEY


# Unicode digits that str.isdigit() takes: "²" made int() fail (a 500), "٣٠" read as 30.
UNICODE_NUMBERS = ["²", "٣٠", "\uff13\uff10", "30\n"]


def _keys_and_grants(runtime: Runtime, actor: Actor) -> list[tuple[str, str, str, int]]:
    """(id, alias, state, grant count) of every key of the actor's project."""
    with runtime.database.unit_of_work() as session:
        found = session.scalars(select(Key).where(Key.project_id == actor.project_id))
        return sorted(
            (
                key.id,
                key.alias,
                str(key.state),
                session.scalar(select(func.count()).where(Grant.key_id == key.id)) or 0,
            )
            for key in found
        )


def test_unicode_digits_answer_kms_0206_and_change_nothing(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = actor_of(runtime, make_tenant())
    key_id = new_key(runtime, owner)
    with runtime.database.unit_of_work() as session:
        made = kms.generate_data_key(session, runtime.root_key, owner, key_id)
    before = _keys_and_grants(runtime, owner)

    def calls(text: str) -> list[Callable[[Session], object]]:
        return [
            lambda s: keys.schedule_deletion(s, owner, key_id, text),
            lambda s: kms.generate_data_key(
                s, runtime.root_key, owner, key_id, kms.requested_length(None, text)
            ),
            lambda s: kms.encrypt_datakey_hex(
                s, runtime.root_key, owner, key_id, made.plaintext.hex(), text
            ),
            lambda s: kms.decrypt_datakey_hex(
                s, runtime.root_key, owner, key_id, made.wrapped.hex(), text
            ),
        ]

    for text in UNICODE_NUMBERS:
        for call in calls(text):
            with pytest.raises(KmsValidationFailed) as caught, runtime.database.unit_of_work() as s:
                call(s)
            assert caught.value.code == "KMS.0206"
    assert _keys_and_grants(runtime, owner) == before
    assert before[0][2] == str(KeyState.ENABLED)


def test_trailing_newlines_are_not_valid_ids_or_names(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    owner = actor_of(runtime, make_tenant())
    grantee = make_tenant().domain_id
    key_id = new_key(runtime, owner)
    with runtime.database.unit_of_work() as session:
        grant_id = grants.create_grant(
            session, owner, key_id, grantee, ["describe-key"], "domain"
        ).id
    before = _keys_and_grants(runtime, owner)
    cases: list[tuple[Callable[[Session], object], str]] = [
        (lambda s: keys.create_key(s, runtime.root_key, owner, "k2\n"), "KMS.0206"),
        (lambda s: keys.disable_key(s, owner, key_id + "\n"), "KMS.0205"),
        (lambda s: kms.check_key_usable(s, owner, key_id + "\n", "describe-key"), "KMS.0205"),
        (
            lambda s: grants.create_grant(
                s, owner, key_id, grantee + "\n", ["describe-key"], "domain"
            ),
            "KMS.0206",
        ),
        (
            lambda s: grants.create_grant(
                s, owner, key_id, grantee, ["describe-key"], "domain", retiring_principal="r\n"
            ),
            "KMS.0206",
        ),
        (
            lambda s: grants.create_grant(
                s, owner, key_id, grantee, ["describe-key"], "domain", name="g\n"
            ),
            "KMS.0206",
        ),
        (lambda s: grants.revoke_grant(s, owner, key_id, grant_id + "\n"), "KMS.2501"),
        (lambda s: grants.retire_grant(s, owner, key_id, grant_id + "\n"), "KMS.2501"),
    ]
    for call, code in cases:
        with (
            pytest.raises((KmsValidationFailed, InvalidKeyId, InvalidGrantId)) as caught,
            runtime.database.unit_of_work() as session,
        ):
            call(session)
        assert caught.value.code == code, caught.value
    assert _keys_and_grants(runtime, owner) == before
