"""Analytics: KPI reports (`analytics.reports`: aggregation by slice; `analytics.statistics`:
intervals and tests; `analytics.attribution`: events → served requests and variants;
`analytics.groupby`: columnar group-bys) and charts (`analytics.charts`), search
analytics over the search log (`analytics.search_report`, `analytics.search_log`), export in
OpenSearch's User Behavior Insights schema (`analytics.ubi`), model history charts, shopper
segments and per-segment KPIs."""
