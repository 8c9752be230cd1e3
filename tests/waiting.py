"""Waiting in tests: on a condition, with a deadline, never a bare sleep."""

import time


def eventually(condition, timeout=5.0, interval=0.01):
    """Call ``condition()`` until it returns something true, and return that; ``AssertionError`` if it has not
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout:g} s: {getattr(condition, '__name__', condition)}")
        time.sleep(interval)
