"""Agencies: a domain's delegation that lets a cloud service act on its behalf.

`EVSAccessKMS` (trusting `op_svc_evs`) lets the disk service use KMS keys of the domain;
encrypted disks need it (S10).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opencbr.core.errors import ValidationFailed
from opencbr.core.ids import is_hex32, new_hex32

from .errors import AgencyNotFound, NameTaken
from .models import Agency

__all__ = ["EVS_KMS_AGENCY", "create_agency", "delete_agency", "has_agency", "list_agencies"]

EVS_KMS_AGENCY = "EVSAccessKMS"
TRUSTED_SERVICES = {EVS_KMS_AGENCY: "op_svc_evs"}


def create_agency(
    session: Session, domain_id: str, name: str, trust_domain_name: str, description: str = ""
) -> Agency:
    if not 1 <= len(name) <= 64:
        raise ValidationFailed(reason="agency name must be 1-64 characters")
    expected = TRUSTED_SERVICES.get(name)
    if expected is not None and trust_domain_name != expected:
        raise ValidationFailed(reason=f"agency {name} must trust {expected}")
    if session.scalar(select(Agency.id).where(Agency.domain_id == domain_id, Agency.name == name)):
        raise NameTaken(kind="agency", name=name)
    agency = Agency(
        id=new_hex32(),
        domain_id=domain_id,
        name=name,
        trust_domain_name=trust_domain_name,
        description=description,
    )
    session.add(agency)
    try:
        session.flush()
    except IntegrityError as exc:
        raise NameTaken(kind="agency", name=name) from exc
    return agency


def list_agencies(session: Session, domain_id: str, name: str | None = None) -> list[Agency]:
    query = select(Agency).where(Agency.domain_id == domain_id).order_by(Agency.name)
    if name is not None:
        query = query.where(Agency.name == name)
    return list(session.scalars(query))


def has_agency(session: Session, domain_id: str, name: str) -> bool:
    return bool(
        session.scalar(select(Agency.id).where(Agency.domain_id == domain_id, Agency.name == name))
    )


def delete_agency(session: Session, domain_id: str, agency_id: str) -> None:
    agency = None
    if is_hex32(agency_id):
        agency = session.scalar(
            select(Agency).where(Agency.id == agency_id, Agency.domain_id == domain_id)
        )
    if agency is None:
        raise AgencyNotFound(id=agency_id)
    session.delete(agency)
    session.flush()
