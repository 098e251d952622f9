"""Slack: alerts and reports through an incoming webhook or a bot token (threads, charts).

``config`` (the settings), ``sink`` (the destination dispatch calls), ``bot`` (the Web API
client for bot mode), ``transport`` (slack_sdk with a capped answer size), ``errors`` (Slack's
answers → our delivery errors).
"""

from alerts.sinks.slack.config import SlackSinkConfig
from alerts.sinks.slack.sink import SlackSink

__all__ = ["SlackSink", "SlackSinkConfig"]
