"""Scoring posts: sentiment (negative/neutral/positive) and urgency / help-seeking."""
