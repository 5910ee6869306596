"""Helpers for portable tests: the same file runs under pytest and under MicroPython."""


def raises(exc_type: type, func: object, *args: object, **kwargs: object) -> BaseException:
    """Call func and return the exception it raised; fail if it raised nothing or another type."""
    try:
        func(*args, **kwargs)  # type: ignore[operator]
    except exc_type as exc:
        return exc
    raise AssertionError("expected %s to be raised" % exc_type.__name__)


class FakeClock:
    """A controllable monotonic clock for sans-I/O state machines."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move time forward and return the new time."""
        self.now += seconds
        return self.now
