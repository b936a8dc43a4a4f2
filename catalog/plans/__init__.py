"""Employers' annual training plans (用人单位年度继续教育培训计划): items (a course or a category, the
staff they target, target 学时 per person), publication, enrollment from the plan, and plan vs actual.
`figures` is pure (plan vs actual from ledger rows); `service` holds the use cases; `routes` the API.
Nothing is imported here, so that catalog.models may use `figures` without a cycle."""
