"""Replies to customers through the platforms' own APIs (issue 18): one writer per platform,
the accounts they write with, and the stage that sends what people wrote on the post page."""
