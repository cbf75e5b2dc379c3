"""Message contracts: how a topic and a payload become readings (or points).

``router`` picks the contract of a topic from ``ingest.contracts``; ``common`` holds the
checks every contract shares; ``ingest.decode`` is the default JSON contract, ``senml``
the RFC 8428 one and ``gov`` the public-service counters. Each decoder is a pure function
of (topic, payload, now) that raises DecodeError with a reason and a stable code.
"""
