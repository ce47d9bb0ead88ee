"""IAM service on real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from opencbr.core.context import Runtime
from opencbr.core.errors import ProjectNotFound, ValidationFailed
from opencbr.iam import service as iam
from opencbr.iam.errors import LoginFailed, NameTaken, UnknownRegion
from opencbr.iam.models import AccessKey, Domain, Project, User
from tests.conftest import TenantFactory, unique


def test_create_tenant_makes_a_project_per_region_and_working_keys(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    assert set(creds.projects) == {"region-1", "region-2"}
    assert all(len(p) == 32 and p == p.lower() for p in creds.projects.values())
    with runtime.database.unit_of_work() as session:
        secret, principal = iam.resolve_access_key(session, runtime.root_key, creds.access_key)
        stored = session.get(AccessKey, creds.access_key)
        assert stored is not None
        assert creds.secret_key.encode() not in stored.secret_sealed
    assert secret == creds.secret_key
    assert principal.domain_id == creds.domain_id


def test_duplicate_tenant_name_is_refused_and_changes_nothing(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    with runtime.database.unit_of_work() as session:
        before = session.scalar(select(func.count()).select_from(Domain))
    with pytest.raises(NameTaken), runtime.database.unit_of_work() as session:
        iam.create_tenant(
            session, runtime.root_key, runtime.settings.regions, creds.domain_name, ["region-1"]
        )
    with runtime.database.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Domain)) == before


def test_unknown_region_is_refused_without_a_partial_tenant(runtime: Runtime) -> None:
    name = unique("t")
    with pytest.raises(UnknownRegion), runtime.database.unit_of_work() as session:
        iam.create_tenant(
            session, runtime.root_key, runtime.settings.regions, name, ["region-1", "mars"]
        )
    with runtime.database.unit_of_work() as session:
        assert session.scalar(select(Domain).where(Domain.name == name)) is None


def test_bad_names_are_validation_errors(runtime: Runtime) -> None:
    with pytest.raises(ValidationFailed), runtime.database.unit_of_work() as session:
        iam.create_domain(session, "bad name with spaces")


def test_foreign_project_looks_exactly_like_a_missing_one(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    alice, bob = make_tenant(), make_tenant()
    with runtime.database.unit_of_work() as session:
        with pytest.raises(ProjectNotFound) as foreign:
            iam.visible_project(session, bob.domain_id, alice.projects["region-1"])
        with pytest.raises(ProjectNotFound) as missing:
            iam.visible_project(session, bob.domain_id, "0" * 32)
    assert (foreign.value.status, foreign.value.code) == (missing.value.status, missing.value.code)
    assert foreign.value.message.replace(
        alice.projects["region-1"], "X"
    ) == missing.value.message.replace("0" * 32, "X")


def test_a_key_resolved_in_a_project_finds_only_its_own_enabled_project(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    alice, bob = make_tenant(), make_tenant()
    own = alice.projects["region-2"]

    def resolve(project_id: str) -> tuple[str, iam.Principal, iam.ProjectScope | None]:
        with runtime.database.unit_of_work() as session:
            return iam.resolve_access_key_in_project(
                session, runtime.root_key, alice.access_key, project_id
            )

    secret, principal, project = resolve(own)
    assert (secret, principal.domain_id) == (alice.secret_key, alice.domain_id)
    assert project == iam.ProjectScope(own, "region-2")
    for other in (bob.projects["region-2"], "0" * 32, "not-a-project-id"):
        assert resolve(other)[:2] == (secret, principal)
        assert resolve(other)[2] is None
    with runtime.database.unit_of_work() as session:
        stored = session.get(Project, own)
        assert stored is not None
        stored.enabled = False
    assert resolve(own)[2] is None
    with runtime.database.unit_of_work() as session, pytest.raises(LoginFailed):
        iam.resolve_access_key_in_project(session, runtime.root_key, "AKNOTAKEY", own)


def test_tokens_authenticate_and_expire(runtime: Runtime, make_tenant: TenantFactory) -> None:
    creds = make_tenant()
    with runtime.database.unit_of_work() as session:
        token, principal, _ = iam.issue_token(
            session, creds.user_name, creds.password, timedelta(hours=1)
        )
        assert iam.resolve_token(session, token).user_id == principal.user_id
        expired, _, _ = iam.issue_token(
            session, creds.user_name, creds.password, timedelta(seconds=-1)
        )
        with pytest.raises(LoginFailed):
            iam.resolve_token(session, expired)
        with pytest.raises(LoginFailed):
            iam.issue_token(session, creds.user_name, "wrong-password", timedelta(hours=1))


def test_a_disabled_key_user_or_domain_stops_keys_and_tokens(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    with runtime.database.unit_of_work() as session:
        token, principal, _ = iam.issue_token(
            session, creds.user_name, creds.password, timedelta(hours=1)
        )
    rows = {
        "key": (AccessKey, creds.access_key),
        "user": (User, principal.user_id),
        "domain": (Domain, creds.domain_id),
    }
    for what, (model, key) in rows.items():
        with runtime.database.unit_of_work() as session:
            row = session.get(model, key)
            assert row is not None
            row.enabled = False
        with runtime.database.unit_of_work() as session:
            with pytest.raises(LoginFailed):
                iam.resolve_access_key(session, runtime.root_key, creds.access_key)
            if what != "key":
                with pytest.raises(LoginFailed):
                    iam.resolve_token(session, token)
            else:
                assert iam.resolve_token(session, token).user_id == principal.user_id
            row = session.get(model, key)
            assert row is not None
            row.enabled = True
    with runtime.database.unit_of_work() as session:
        secret, again = iam.resolve_access_key(session, runtime.root_key, creds.access_key)
    assert (secret, again) == (creds.secret_key, principal)


def test_delete_domain_removes_everything_of_it(
    runtime: Runtime, make_tenant: TenantFactory
) -> None:
    creds = make_tenant()
    with runtime.database.unit_of_work() as session:
        iam.delete_domain(session, creds.domain_id)
    with runtime.database.unit_of_work() as session:
        assert session.get(Domain, creds.domain_id) is None
        assert session.scalar(select(Project).where(Project.domain_id == creds.domain_id)) is None
        with pytest.raises(LoginFailed):
            iam.resolve_access_key(session, runtime.root_key, creds.access_key)
