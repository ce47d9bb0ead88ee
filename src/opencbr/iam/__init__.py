"""IAM: regions, domains (accounts), projects, users, access keys, signatures and tokens."""

__all__: list[str] = []
