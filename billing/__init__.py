"""Prices, metering and accounts. Imports nothing heavy: the gateway uses it."""
