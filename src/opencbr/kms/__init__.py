"""KMS: customer master keys, envelope encryption (data keys) and grants."""

__all__: list[str] = []
