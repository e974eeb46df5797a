"""Analytics: KPI reports and charts (`analytics.reports`, `analytics.charts`), search
analytics over the search log (`analytics.search_report`, `analytics.search_log`), export in
OpenSearch's User Behavior Insights schema (`analytics.ubi`), model history charts, shopper
segments and per-segment KPIs."""
