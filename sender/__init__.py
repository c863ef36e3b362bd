"""Sending: provider adapters, the send pipeline and the provider simulator."""
