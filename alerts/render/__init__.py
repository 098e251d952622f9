"""What each destination shows, one module per destination covering post alerts and reports
(spikes, digests, held alerts, incidents); pure functions, no I/O.

``common`` (excerpts, control characters, safe links, the console's plain text and the Slack
post alert's blocks), ``text`` (the report layout several destinations share), ``slack``,
``email``, ``github``, ``jira``, ``zendesk``, ``webhook``. Untrusted text is made inert for
each destination in its own module (the module docstrings say how).
"""
