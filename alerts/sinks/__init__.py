"""Alert destinations, one module per sink. Register a new one here: ``"type": "module:Class"``."""

from __future__ import annotations

from typing import Any

from listener.core.registry import load_plugin

# installed packages add their own destinations here (README: "Writing a plugin")
ENTRY_POINTS = "listener.sinks"
REGISTRY: dict[str, str] = {
    "console": "alerts.sinks.console:ConsoleSink",
    "slack": "alerts.sinks.slack:SlackSink",
    "email": "alerts.sinks.email:EmailSink",
    "zendesk": "alerts.sinks.zendesk:ZendeskSink",
    "webhook": "alerts.sinks.webhook:WebhookSink",
    "jira": "alerts.sinks.jira:JiraSink",
    "github": "alerts.sinks.github:GitHubSink",
    "discord": "alerts.sinks.discord:DiscordSink",
}


def sink_class(type_name: str) -> Any:
    """The Sink class for a destination ``type``; raises ConfigError listing valid types."""
    return load_plugin(REGISTRY, "destination", type_name, ENTRY_POINTS)
