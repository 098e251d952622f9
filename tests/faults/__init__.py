"""Issue 14's fault matrix: every network source and every sink against every way a server
misbehaves (:mod:`tests.fakes.chaos`), through the product's own stage functions.

- ``test_source_faults.py``: each source built from a config file by ``Runtime``, polled with
  ``Runtime.run_collect`` while its fake answers with one fault kind, then again once it is over;
- ``test_sink_faults.py``: each sink built from its destination settings, one alert in a real
  SQLite outbox, ``alerts.dispatch.dispatch`` with a total ``send_deadline`` and the address
  guard, then again once the fault is over.

The builders live beside them (``_sources.py``, ``_sinks.py``).
"""
