"""Targeting: stores, geofences on H3, promotions, recipients and segments."""
