"""The `opencbr` command: serve, worker, admin bootstrap and client verbs."""

__all__: list[str] = []
