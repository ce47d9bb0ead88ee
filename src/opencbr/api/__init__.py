"""The ASGI application: signature auth, routing of every slice, error mapping."""

__all__: list[str] = []
