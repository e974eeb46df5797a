"""Reports for merchandisers: KPI reports and charts (`analytics.reports`, `analytics.charts`),
search analytics (`analytics.search_report`) over the search log (`analytics.search_log`),
and export in OpenSearch's User Behavior Insights schema (`analytics.ubi`)."""
