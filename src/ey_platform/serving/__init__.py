"""Serving the published marts: the read-only queries of ``ey-platform query`` and the
dashboard. The marts themselves are published by the warehouse (``publish``)."""
