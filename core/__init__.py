"""Shared contracts of cityops: types, ports, errors, settings. Imports nothing of ours."""
