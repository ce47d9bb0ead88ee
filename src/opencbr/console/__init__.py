"""The web console: server-rendered pages for the product procedure."""

__all__: list[str] = []
