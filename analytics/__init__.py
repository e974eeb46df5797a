"""Reports for merchandisers: search analytics (`analytics.search_report`), the search log
they read (`analytics.search_log`), and export in OpenSearch's User Behavior Insights
schema (`analytics.ubi`)."""
