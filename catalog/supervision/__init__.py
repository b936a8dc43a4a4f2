"""The bureau's supervision view (监管): per provider, sector and credit year, what was held, who attended,
the 学时 issued and how they were decided, the flags, and each session's reconciliation (fraud 17); drill-down
to sessions and entries; the report as XLSX/CSV (`lectern report`).

- `scope`: who supervises which providers (pure);
- `reconcile`: the 超额 rules, percentiles and masks (pure);
- `walk`: one pass over a year of the ledger, the figures of every provider and session;
- `snapshot`: those figures stored per year and refreshed in the background;
- `views`, `routes`: what the page reads; `export`, `xlsx`: the streamed report;
- `sectors`: an organization's sector (行业), set by administrators.
"""
