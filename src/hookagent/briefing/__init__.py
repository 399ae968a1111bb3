"""What the agent is shown: the prompts of each phase, an issue's discussion, a Sentry event.

Leaves: they render text from what a webhook or a forge gave, and import nothing but leaves.
"""
