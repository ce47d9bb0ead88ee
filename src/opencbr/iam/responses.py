"""The bodies of the IAM routes as they answer (see `core.wire`): the Keystone v3 fields the
vendor's IAM gives, and our `whoami`."""

from __future__ import annotations

from opencbr.core.wire import FreeForm, Wire

__all__ = [
    "AgencyList",
    "AgencyOne",
    "DomainList",
    "ProjectList",
    "ProjectOne",
    "TokenAnswer",
    "WhoAmI",
]


class DomainOut(Wire):
    id: str
    name: str
    enabled: bool
    description: str
    links: FreeForm


class SelfLink(Wire):
    self: str


class DomainList(Wire):
    domains: list[DomainOut]
    links: SelfLink


class ProjectOut(Wire):
    id: str
    name: str
    domain_id: str
    parent_id: str
    enabled: bool
    is_domain: bool
    description: str
    region: str
    links: SelfLink


class ProjectOne(Wire):
    project: ProjectOut


class ProjectList(Wire):
    projects: list[ProjectOut]
    links: SelfLink


class TokenUser(Wire):
    id: str
    name: str
    domain: DomainOut


class TokenProject(Wire):
    id: str
    name: str
    domain: DomainOut


class TokenOut(Wire):
    expires_at: str
    methods: list[str]
    user: TokenUser
    catalog: list[FreeForm]
    project: TokenProject | None = None  # when the token is scoped to a project


class TokenAnswer(Wire):
    """The token itself is the `X-Subject-Token` header."""

    token: TokenOut


class WhoAmIProject(Wire):
    id: str
    name: str
    region: str


class WhoAmI(Wire):
    domain_id: str
    domain_name: str
    user_id: str
    user_name: str
    projects: list[WhoAmIProject]
    agencies: list[str]


class AgencyOut(Wire):
    id: str
    name: str
    domain_id: str
    trust_domain_name: str
    trust_domain_id: None
    description: str
    duration: str
    expire_time: None
    create_time: str


class AgencyOne(Wire):
    agency: AgencyOut


class AgencyList(Wire):
    agencies: list[AgencyOut]
