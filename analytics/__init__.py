"""Offline analytics: model history charts, shopper segments and per-segment KPIs."""
