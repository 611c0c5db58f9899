"""Use cases: one function per thing a caller asks, each inside one unit of work."""
