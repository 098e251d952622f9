"""The trends dashboard (``listener serve``): Flask app, one module per page group.

Nothing here is imported unless the dashboard runs: Flask and waitress are the ``web`` extra.
"""
