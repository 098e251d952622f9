#!/bin/sh
# Cron wrapper: load the secrets, run every stage once, log, and treat "another run is still
# busy" (exit 75, EX_TEMPFAIL) as a quiet success: the next run picks up what is left.
# Install as /opt/listener/bin/listener-cron (mode 0755) and call it from deploy/listener.cron.
set -u
ENV_FILE=${LISTENER_ENV_FILE:-/etc/listener/listener.env}
LOG_FILE=${LISTENER_LOG_FILE:-/var/log/listener/listener.log}
LISTENER=${LISTENER_BIN:-/opt/listener/venv/bin/listener}

set -a
. "$ENV_FILE"
set +a
export LISTENER_CONFIG="${LISTENER_CONFIG:-/etc/listener/config.yaml}" HF_HUB_OFFLINE=1

"$LISTENER" --log-format json run --once >>"$LOG_FILE" 2>&1
status=$?
if [ "$status" -eq 75 ]; then
    exit 0
fi
if [ "$status" -ne 0 ]; then
    echo "listener run --once failed (exit $status); see $LOG_FILE" >&2  # cron mails this
fi
exit "$status"
