"""Listing backups: the caller's own, those shared with it, or both, filtered and paged.

A listing's statements depend only on its shape (which filters are given, whose backups, the
order) and are cached per shape; the values are bound parameters.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Integer,
    ScalarSelect,
    Select,
    bindparam,
    false,
    func,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from opencbr.core.context import Actor
from opencbr.core.db import rows_of
from opencbr.core.errors import ValidationFailed

from .models import Backup, BackupRecord, BackupStatus, Member, MemberStatus
from .visibility import RECORD_FIELDS, ListedRecord, Membership, as_record

__all__ = ["SORT_KEYS", "BackupFilters", "BackupPage", "list_backups"]

SORT_KEYS = {"created_at", "updated_at", "name", "status", "protected_at", "id"}


@dataclass(frozen=True)
class BackupFilters:
    vault_id: str | None = None
    checkpoint_id: str | None = None
    resource_id: str | None = None
    resource_name: str | None = None
    resource_az: str | None = None
    resource_type: str | None = None
    name: str | None = None
    parent_id: str | None = None
    status: str | None = None
    image_type: str | None = None
    own_type: str = "private"
    member_status: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    incremental: bool | None = None
    sort: str | None = None
    limit: int = 1000
    offset: int = 0
    marker: str | None = None  # the last backup of the previous page: the page starts after it


@dataclass(frozen=True)
class BackupPage:
    backups: list[BackupRecord]
    count: int  # in the whole listing
    memberships: dict[str, Membership]  # the caller's shares of the page's backups, by id


# BackupFilters fields that do not narrow the backups themselves: who they belong to, and
# paging. Every other field (any filter added later included) is a filter on the backups.
_NOT_BACKUP_FILTERS = frozenset({"own_type", "member_status", "sort", "limit", "offset", "marker"})
_BACKUP_FILTERS = tuple(f.name for f in fields(BackupFilters) if f.name not in _NOT_BACKUP_FILTERS)
_EXACT_FILTERS = ("checkpoint_id", "resource_id", "resource_type", "resource_az", "status")
_LIKE_ESCAPE = "/"


def _like_escaped(text: str) -> str:
    """`text` matched literally inside a LIKE pattern escaped by `_LIKE_ESCAPE`."""
    for special in (_LIKE_ESCAPE, "%", "_"):
        text = text.replace(special, _LIKE_ESCAPE + special)
    return text


@dataclass(frozen=True)
class _Listing:
    """A listing's statements, whose values are bound parameters: the page (each row with the
    count of the whole listing), the count alone, and the ordered ids (to find a marker)."""

    page: Select[Any]
    count: Select[Any]
    ids: Select[Any]


_OWN_TYPES = {"private": (True,), "shared": (False,), "all_granted": (True, False)}


def _side(own: bool, given: frozenset[str]) -> Select[Any]:
    """One side of a listing, filtered as `given` says: the caller's (`:project_id`) own
    backups, or those shared with it (S12), each with the caller's member status and vault.

    Each side is read from its own index in the listing's order: an owner's backups by
    project and date, a recipient's members by recipient and the backup's date, which a
    member keeps (`Member.backup_created_at`). A shared backup's `created_at` and `id` are
    read from its member's copies, equal by construction, so that a page of shared backups is
    the first entries of that index. (Ordered by the backups' own date index, PostgreSQL
    walked the region's backups newest first until it met enough of the caller's.)"""
    if own:
        query = select(
            *Backup.__table__.c,
            null().label("member_status"),
            null().label("member_vault_id"),
        ).where(Backup.project_id == bindparam("project_id"))
        if "vault_id" in given:
            query = query.where(Backup.vault_id == bindparam("vault_id"))
    else:
        copies = {"created_at": Member.backup_created_at, "id": Member.backup_id}
        columns = [copies.get(c.key, c).label(c.key) for c in Backup.__table__.c]
        query = (
            select(
                *columns,
                Member.status.label("member_status"),
                Member.vault_id.label("member_vault_id"),
            )
            .select_from(Member)
            .join(Backup, Backup.id == Member.backup_id)
            .where(Member.dest_project_id == bindparam("project_id"))
        )
        if "member_status" in given:
            query = query.where(Member.status == bindparam("member_status"))
        if "vault_id" in given:  # accepted into that vault
            query = query.where(
                Member.vault_id == bindparam("vault_id"), Member.status == MemberStatus.ACCEPTED
            )
    query = query.where(Backup.region == bindparam("region"))
    if "parent_id" in given:
        query = query.where(Backup.parent_id == bindparam("parent_id"))
    else:
        query = query.where(Backup.parent_id.is_(None))
    for column in _EXACT_FILTERS:
        if column in given:
            query = query.where(getattr(Backup, column) == bindparam(column))
    for column in ("name", "resource_name"):
        if column in given:
            pattern: BindParameter[str] = bindparam(column)
            query = query.where(getattr(Backup, column).contains(pattern, escape=_LIKE_ESCAPE))
    if "image_type" in given:  # given only when it is not "backup": nothing is listed
        query = query.where(false())
    if "start_time" in given:
        query = query.where(Backup.created_at >= bindparam("start_time"))
    if "end_time" in given:
        query = query.where(Backup.created_at <= bindparam("end_time"))
    if "incremental" in given:
        query = query.where(Backup.incremental == bindparam("incremental"))
    return query


def _side_count(own: bool, given: frozenset[str], side: Select[Any]) -> ScalarSelect[int]:
    """How many backups one side holds. What was shared with the caller, with no filter on
    the backups, is counted on its member rows alone: a member exists only for a top-level
    backup of the recipient's region (S2, S4), so joining the backups would only look each
    one up (1,000 shared backups: 1,000 index lookups, most of the database's work)."""
    if not own and given <= {"member_status"}:
        count = select(func.count()).where(Member.dest_project_id == bindparam("project_id"))
        if "member_status" in given:
            count = count.where(Member.status == bindparam("member_status"))
    else:
        count = select(func.count()).select_from(side.subquery())
    return count.scalar_subquery()


def _sort_keys(columns: Any, sort: str | None) -> list[ColumnElement[Any]]:
    """The keys `sort` asks for over a listing's `columns`, the backup's id last (stable
    pages)."""
    keys = []
    for part in (sort or "created_at:desc").split(","):
        key, _, direction = part.strip().partition(":")
        if key not in SORT_KEYS or direction not in ("", "asc", "desc"):
            raise ValidationFailed(reason=f"cannot sort by {part!r}")
        column = columns[key]
        keys.append(column.asc() if direction == "asc" else column.desc())
    return [*keys, columns["id"].desc()]


@functools.lru_cache(maxsize=256)
def _listing(own_type: str, given: frozenset[str], sort: str | None) -> _Listing:
    """The statements of listings of one shape: which filters are given (`given`, the names
    of `BackupFilters` fields), whose backups and the order. Listings of a shape share them:
    building a listing's statements and their cache keys took as much CPU as running them.

    A listing of both sides pages through their UNION ALL (a backup is never its owner's
    share, S4). Its page is among the first `:reach` (offset + limit) backups of each side,
    so each side is read from its index that far and only those are sorted together. (Without
    that bound PostgreSQL joined every share and sorted both sides whole.)"""
    if own_type not in _OWN_TYPES:
        raise ValidationFailed(reason="own_type must be private, shared or all_granted")
    sides = [(own, _side(own, given)) for own in _OWN_TYPES[own_type]]
    if len(sides) == 1:
        listed = everything = sides[0][1].subquery()
    else:
        reach = bindparam("reach", type_=BigInteger)  # the largest offset plus a limit
        firsts = [
            select(side.order_by(*_sort_keys(side.selected_columns, sort)).limit(reach).subquery())
            for _, side in sides
        ]
        listed = union_all(*firsts).subquery()
        everything = union_all(*(side for _, side in sides)).subquery()
    counts = [_side_count(own, given, side) for own, side in sides]
    total = counts[0] if len(counts) == 1 else counts[0] + counts[1]
    page = (
        select(*(listed.c[name] for name in RECORD_FIELDS), total.label("listing_count"))
        .order_by(*_sort_keys(listed.c, sort))
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )
    ids = select(everything.c.id).order_by(*_sort_keys(everything.c, sort))
    return _Listing(page, select(total), ids)


def list_backups(session: Session, actor: Actor, filters: BackupFilters) -> BackupPage:
    """A page of the backups the caller sees (its own, those shared with it, or both, as
    `own_type` says), read as rows with the caller's member status and vault of each (see
    `_side`). The rows carry the count of the whole listing, so a page is one statement
    unless it is empty."""
    if filters.member_status and filters.member_status not in set(MemberStatus):
        raise ValidationFailed(reason="member_status must be pending, accepted or rejected")
    if filters.status and filters.status not in set(BackupStatus):
        raise ValidationFailed(reason=f"unknown status {filters.status!r}")
    values: dict[str, Any] = {
        name: getattr(filters, name)
        for name in (*_BACKUP_FILTERS, "member_status")
        if getattr(filters, name) not in (None, "")
    }
    if values.get("image_type") == "backup":  # every backup is of image type "backup"
        del values["image_type"]
    listing = _listing(filters.own_type, frozenset(values), filters.sort)
    for column in ("name", "resource_name"):
        if column in values:
            values[column] = _like_escaped(values[column])
    values.update(project_id=actor.project_id, region=actor.region)
    start = filters.offset
    if filters.marker:
        start += _position_after(session, listing.ids, values, filters.marker)
    page_values = {**values, "limit": filters.limit, "offset": start}
    page_values["reach"] = start + filters.limit
    rows = rows_of(session).execute(listing.page, page_values).all()
    records = [as_record(row, ListedRecord) for row in rows]
    if rows:
        count = rows[0].listing_count
    elif start:  # past the end of the listing
        count = rows_of(session).scalar(listing.count, values) or 0
    else:  # nothing to list
        count = 0
    shares = {backup.id: share for backup, share in records if share is not None}
    return BackupPage([backup for backup, _ in records], count, shares)


def _position_after(
    session: Session, ordered_ids: Select[Any], values: dict[str, Any], marker: str
) -> int:
    """How many rows of the ordered listing come up to and including the `marker` backup."""
    ids = list(rows_of(session).scalars(ordered_ids, values))
    try:
        return ids.index(marker) + 1
    except ValueError:
        raise ValidationFailed(
            reason=f"marker {marker!r} is not a backup of this listing"
        ) from None
