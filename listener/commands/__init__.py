"""The commands of ``listener``, one module per group of commands; :mod:`listener.cli` builds
the main group, registers them on it and turns errors into exit statuses.

    run         run (the pipeline: a daemon, or every stage once for cron), summary
    sources     sources (each one ready or not), backfill (a source's history)
    checks      check-config (a config file), doctor (config, database, network, model)
    status      status (health, stages, queues), metrics (Prometheus gauges)
    database    db migrate, db backup
    alerts      alerts list, alerts retry (the outbox)
    scoring     score (posts from stdin), eval (a labelled data set)
    training    train (the default model)
    users       users add, list, disable, enable, set-role, set-password (dashboard people)
    privacy     forget (erase one person's posts, or posts older than N days now)
    options     what they share: --config, the model options, the logging options after a
                command, loading the config and taking the run lock as a command does, the
                configured database, and the audit log's name for the command's user

``listener serve`` lives with the dashboard (:mod:`listener.web.serve`).

Each module holds plain click commands (and the ``db``, ``alerts`` and ``users`` groups) and
never imports :mod:`listener.cli`: the group imports them. Like the rest of the command line
they are thin: parse options, call library functions, raise ListenerError subclasses.
"""
