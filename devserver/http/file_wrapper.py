"""PEP 3333's ``wsgi.file_wrapper``: a file as a response body, read in blocks or sent with ``sendfile`` by
``devserver.http.gateway``. The file handlers (``devserver.media``) answer with it too."""

__all__ = ["BLOCK_SIZE", "FileIterator"]

BLOCK_SIZE = 64 * 1024
"""Default bytes per block of a streamed body."""


class FileIterator:
    """A WSGI response body: the bytes of ``file`` from its current position, in blocks of ``block_size``.

    ``size``: how many bytes at most (``None``: to the end of the file). Also offered as ``wsgi.file_wrapper``
    (PEP 3333: ``FileIterator(filelike, block_size)``); ``devserver.http.gateway.Gateway`` sends a ``FileIterator`` over
    a file with a descriptor with ``socket.sendfile``. ``close()`` closes the file; the server calls it at the end
    of the response and when the client disconnects, so no descriptor outlives the request. Memory stays at one
    block whatever the file's size.
    """

    __slots__ = ("block_size", "file", "remaining")

    def __init__(self, file, block_size=BLOCK_SIZE, size=None):
        self.file = file
        self.block_size = block_size
        self.remaining = size

    def __iter__(self):
        return self

    def __next__(self):
        remaining = self.remaining
        if remaining is None:
            block = self.file.read(self.block_size)
        elif remaining <= 0:
            raise StopIteration
        else:
            block = self.file.read(min(self.block_size, remaining))
            self.remaining = remaining - len(block)
        if not block:
            # The end of the file, or a file that shrank after it was described: the client then sees fewer
            # bytes than Content-Length and knows the body is incomplete.
            raise StopIteration
        return block

    def close(self):
        self.file.close()
