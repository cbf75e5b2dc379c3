"""The operations dashboard: a Dash app built by :func:`dashboard.app.create_app`.

Importing this package starts nothing and connects to nothing.
"""
