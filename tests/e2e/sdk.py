"""Building official vendor SDK clients pointed at a loopback server."""

from __future__ import annotations

from typing import Any

from huaweicloudsdkcore.auth.credentials import BasicCredentials, GlobalCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig

from opencbr.iam.service import TenantCredentials


def _config() -> HttpConfig:
    config = HttpConfig.get_default_config()
    config.timeout = (5, 60)
    return config


def project_client(
    client_class: Any, url: str, creds: TenantCredentials, region: str = "region-1"
) -> Any:
    """A regional client (CBR, EVS, KMS) acting in the tenant's project of `region`."""
    credentials = BasicCredentials(creds.access_key, creds.secret_key, creds.projects[region])
    return (
        client_class.new_builder()
        .with_http_config(_config())
        .with_credentials(credentials)
        .with_endpoints([url])
        .build()
    )


def global_client(client_class: Any, url: str, creds: TenantCredentials) -> Any:
    """A global client (IAM) acting for the tenant's domain."""
    credentials = GlobalCredentials(creds.access_key, creds.secret_key, creds.domain_id)
    return (
        client_class.new_builder()
        .with_http_config(_config())
        .with_credentials(credentials)
        .with_endpoints([url])
        .build()
    )
