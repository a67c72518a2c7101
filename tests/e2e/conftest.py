from tests.e2e.running import daemons

__all__ = ["daemons"]
