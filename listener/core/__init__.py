"""The ground floor: what every other part of listener stands on, importing nothing of ours
but each other.

- ``models``: the value objects (Post, Page, Score, AlertMessage, ReportMessage …);
- ``errors``: the one exception tree;
- ``log``: logging set-up and the redaction of secrets;
- ``query``: the brand query language;
- ``language``: a post's language (platform tag or offline detection);
- ``registry``: the plugin registry (source and sink names → classes);
- ``instruments``: the Prometheus counters the stages bump;
- ``deadline``, ``netguard``, ``httpguard``: total deadlines, the address guard and the
  answer-size caps every outbound request goes through.

``storage`` and ``classifiers`` stand on it; ``alerts`` and ``listener.sources`` on those; the
shell (config, pipeline, scheduler, CLI, web) on top. ``make test`` checks this
(``.importlinter``).
"""
