"""Published KMS operations this service does not serve (answered `APIGW.0101`).

The exemptions are lasting (asymmetric keys, key stores, access points, key policies,
imported material, multi-region keys); the `planned` ones are meant to be served
(docs/api-coverage.md lists both).
"""

from __future__ import annotations

from opencbr.core.unsupported import NotSupportedOperation

__all__ = ["NOT_SUPPORTED"]

_ASYMMETRIC = "only symmetric AES_256 keys exist here: no signing, MAC or key pairs"
_KEYSTORES = "dedicated key stores (HSM clusters) are not offered"
_ACCESS_POINTS = "access points are not offered"
_KEY_POLICIES = "key policies are not offered; grants say who may use a key"
_IMPORT = "keys are always generated here; importing key material is not offered"
_REGIONS = "multi-region keys are not offered"
_OTHER = "not offered (data key capsules, PINs, random numbers, re-encryption, instances)"
_LATER = "not implemented yet"


def _op(sdk_method: str, method: str, path: str, reason: str) -> NotSupportedOperation:
    return NotSupportedOperation(sdk_method, method, path, reason, reason == _LATER)


NOT_SUPPORTED: tuple[NotSupportedOperation, ...] = (
    _op("create_access_point", "POST", "/v1.0/{project_id}/kms/access-points", _ACCESS_POINTS),
    _op("create_datakey_capsule", "POST", "/v1.0/{project_id}/kms/datakey-capsule/create", _OTHER),
    _op(
        "create_ec_datakey_pair",
        "POST",
        "/v1.0/{project_id}/kms/create-ec-datakey-pair",
        _ASYMMETRIC,
    ),
    _op("create_key_policy", "POST", "/v1.0/{project_id}/kms/key-policies", _KEY_POLICIES),
    _op("create_key_store", "POST", "/v1.0/{project_id}/keystores", _KEYSTORES),
    _op(
        "create_parameters_for_import",
        "POST",
        "/v1.0/{project_id}/kms/get-parameters-for-import",
        _IMPORT,
    ),
    _op("create_pin", "POST", "/v1.0/{project_id}/kms/create-pin", _OTHER),
    _op("create_random", "POST", "/v1.0/{project_id}/kms/gen-random", _OTHER),
    _op(
        "create_rsa_datakey_pair",
        "POST",
        "/v1.0/{project_id}/kms/create-rsa-datakey-pair",
        _ASYMMETRIC,
    ),
    _op(
        "decrypt_datakey_capsule", "POST", "/v1.0/{project_id}/kms/datakey-capsule/decrypt", _OTHER
    ),
    _op(
        "delete_access_point",
        "DELETE",
        "/v1.0/{project_id}/kms/access-points/{access_point_id}",
        _ACCESS_POINTS,
    ),
    _op(
        "delete_imported_key_material",
        "POST",
        "/v1.0/{project_id}/kms/delete-imported-key-material",
        _IMPORT,
    ),
    _op(
        "delete_key_policy",
        "DELETE",
        "/v1.0/{project_id}/kms/key-policies/{policy_id}",
        _KEY_POLICIES,
    ),
    _op("delete_key_store", "DELETE", "/v1.0/{project_id}/keystores/{keystore_id}", _KEYSTORES),
    _op("derive_shared_secret", "POST", "/v1.0/{project_id}/kms/derive-shared-secret", _ASYMMETRIC),
    _op(
        "disable_access_point",
        "POST",
        "/v1.0/{project_id}/kms/access-points/{access_point_id}/disable",
        _ACCESS_POINTS,
    ),
    _op(
        "disable_key_store",
        "POST",
        "/v1.0/{project_id}/keystores/{keystore_id}/disable",
        _KEYSTORES,
    ),
    _op(
        "download_access_point_private_key",
        "POST",
        "/v1.0/{project_id}/kms/access-points/{access_point_id}/get-privatekey",
        _ACCESS_POINTS,
    ),
    _op(
        "enable_access_point",
        "POST",
        "/v1.0/{project_id}/kms/access-points/{access_point_id}/enable",
        _ACCESS_POINTS,
    ),
    _op(
        "enable_key_store", "POST", "/v1.0/{project_id}/keystores/{keystore_id}/enable", _KEYSTORES
    ),
    _op("generate_mac", "POST", "/v1.0/{project_id}/kms/generate-mac", _ASYMMETRIC),
    _op("import_key_material", "POST", "/v1.0/{project_id}/kms/import-key-material", _IMPORT),
    _op("list_access_point", "GET", "/v1.0/{project_id}/kms/access-points", _ACCESS_POINTS),
    _op("list_key_policy", "GET", "/v1.0/{project_id}/kms/key-policies", _KEY_POLICIES),
    _op("list_key_stores", "GET", "/v1.0/{project_id}/keystores", _KEYSTORES),
    _op("list_support_regions", "GET", "/v2/{project_id}/kms/regions", _REGIONS),
    _op("re_encrypt", "POST", "/v1.0/{project_id}/kms/re-encrypt", _OTHER),
    _op("replicate_key", "POST", "/v2/{project_id}/kms/keys/{key_id}/replicate", _REGIONS),
    _op("show_key_policy", "GET", "/v1.0/{project_id}/kms/key-policies/{policy_id}", _KEY_POLICIES),
    _op("show_key_store", "GET", "/v1.0/{project_id}/keystores/{keystore_id}", _KEYSTORES),
    _op("show_public_key", "POST", "/v1.0/{project_id}/kms/get-publickey", _ASYMMETRIC),
    _op("show_user_instances", "GET", "/v1.0/{project_id}/kms/user-instances", _OTHER),
    _op("show_user_quotas", "GET", "/v1.0/{project_id}/kms/user-quotas", _OTHER),
    _op("sign", "POST", "/v1.0/{project_id}/kms/sign", _ASYMMETRIC),
    _op(
        "update_key_policy", "PUT", "/v1.0/{project_id}/kms/key-policies/{policy_id}", _KEY_POLICIES
    ),
    _op(
        "update_primary_region",
        "PUT",
        "/v2/{project_id}/kms/keys/{key_id}/update-primary-region",
        _REGIONS,
    ),
    _op("validate_signature", "POST", "/v1.0/{project_id}/kms/verify", _ASYMMETRIC),
    _op("verify_mac", "POST", "/v1.0/{project_id}/kms/verify-mac", _ASYMMETRIC),
)
