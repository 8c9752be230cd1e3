"""The HTTP core: a request parsed once, on the selector's thread, then answered by a worker. Each module one job;
a module imports only those above it in this list:

- ``parser``: bytes in, a parsed request or a refusal out, with no I/O (request line, fields, framing, limits,
  the chunked decoder, the body buffer);
- ``response``: ``start_response``'s checks and the header block, with no I/O;
- ``file_wrapper``: ``wsgi.file_wrapper``;
- ``cheroot_private``: every place that reaches past cheroot's public hooks, each with its reason;
- ``tls``: the TLS adapter, its non-blocking handshake, certificates;
- ``receive``: the selector's side: reads, deadlines, ``100 Continue``, the server's own answers (400, 408, 503);
- ``gateway``: the WSGI side: environ, ``start_response``, write, ``sendfile``, streams;
- ``request``: cheroot's connection and request objects, filled from the parse.
"""
