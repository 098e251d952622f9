"""The Slack destination's settings: an incoming webhook, or a bot token and a channel.

Its own module so that the sink and the bot client, which both read it, import it from below.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from alerts.sinks._http import (
    has_controls,
    https_base_url,
    https_or_local,
    split_url,
)
from alerts.sinks.base import SinkConfig

SLACK_API_URL = "https://slack.com/api"
_TOKEN = re.compile(r"^(?:xoxe\.)?xox[bp]-[A-Za-z0-9-]+$")
_CHANNEL = re.compile(r"^#?[^\s#<>&|,@]{1,80}$")


class SlackSinkConfig(SinkConfig):
    """An incoming webhook (``webhook_url``), or a bot token and a channel to post in."""

    # The config loader prints pydantic's messages; never let them echo a secret back.
    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["slack"] = Field("slack", description="always 'slack'")
    webhook_url: str | None = Field(
        None,
        repr=False,
        description='incoming-webhook URL (a secret: give it as {"$env": NAME}); https only',
    )
    token: str | None = Field(
        None,
        repr=False,
        description='instead of webhook_url: the app\'s bot token xoxb-… (a secret: '
        '{"$env": SLACK_BOT_TOKEN}); needs channel',
    )
    channel: str | None = Field(
        None,
        description="with token: the channel ID (C0123ABCDEF, recommended) or #name to post in",
    )
    base_url: str = Field(
        SLACK_API_URL, description="with token: the Slack Web API root (proxies, tests)"
    )
    timeout: float = Field(
        10, gt=0, le=120, description="seconds to wait for Slack to connect and to answer"
    )
    min_interval: float = Field(
        1.0, ge=0, description="seconds between two alerts (Slack allows ~1 message/s/channel)"
    )

    @field_validator("webhook_url")
    @classmethod
    def _https_only(cls, url: str | None) -> str | None:
        """The URL carries the credential: plain http would send it in clear over the network."""
        if url is None:
            return None
        url = url.strip()
        if has_controls(url):
            raise ValueError("webhook_url must not contain spaces or control characters")
        parts = split_url(url, "webhook_url")
        if not parts.hostname:
            raise ValueError("webhook_url must be a full URL such as https://hooks.slack.com/…")
        return https_or_local(url, "webhook_url", parts)

    @field_validator("token")
    @classmethod
    def _bot_token(cls, token: str | None) -> str | None:
        if token is not None and not _TOKEN.match(token.strip()):
            raise ValueError("token must be the app's bot token (xoxb-…) or a user token "
                             "(xoxp-…)")
        return None if token is None else token.strip()

    @field_validator("channel")
    @classmethod
    def _channel(cls, channel: str | None) -> str | None:
        if channel is not None and not _CHANNEL.match(channel.strip()):
            raise ValueError("channel must be a channel ID such as C0123ABCDEF or a #name")
        return None if channel is None else channel.strip()

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, url: str) -> str:
        return https_base_url(url, "base_url")

    @model_validator(mode="after")
    def _one_mode(self) -> SlackSinkConfig:
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError(
                "give either webhook_url (an incoming webhook) or token and channel (a bot "
                "token), not both and not neither"
            )
        if self.token is not None and self.channel is None:
            raise ValueError("token needs channel: the channel ID (C0123ABCDEF) or #name")
        if self.webhook_url is not None and self.channel is not None:
            raise ValueError(
                "channel works with token only: an incoming webhook posts to the channel it was "
                "created for"
            )
        return self
