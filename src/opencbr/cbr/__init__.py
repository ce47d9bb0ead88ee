"""CBR: vaults, checkpoints, backups, restore, policies, sharing and operation logs."""

__all__: list[str] = []
