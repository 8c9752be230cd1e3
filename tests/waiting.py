"""Waiting in tests: on a condition, with a deadline, never a bare sleep."""

import time


def eventually(condition, timeout=5.0, interval=0.01, context=None):
    """Call ``condition()`` until it returns something true, and return that; ``AssertionError`` if it has not
    after ``timeout`` seconds. ``context``: a callable whose result is added to that error's message (a server's
    output, say), called only then. An exception that ``condition`` raises is not caught."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            message = f"not true within {timeout:g} s: {getattr(condition, '__name__', condition)}"
            if context is not None:
                message += f"\n{context()}"
            raise AssertionError(message)
        time.sleep(interval)
