"""Core: settings, database, ids, clock, errors. Imports nothing else of opencbr."""

__all__: list[str] = []
