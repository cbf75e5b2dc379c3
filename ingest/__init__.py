"""MQTT ingest: topics → decode (pure) → enrich (device → unit codes) → batch → store.

Bad input goes to dead-letter with its reason; MQTT is acknowledged only once the store
(or dead-letter) has the message. Modules are imported by their full name
(``ingest.worker``, ``ingest.decode`` ...) so importing the package pulls in nothing heavy.
"""
