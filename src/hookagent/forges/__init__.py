"""Outbound calls to code forges: open a change request (GitHub today)."""
