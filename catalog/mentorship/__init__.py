"""师承带徒 (mentorship, R22, R26, fraud 20): an expert and a professional record a yearly agreement, both
confirm it, and a completed agreement earns the mentee the policy's fixed 专业 award as a pending ledger
entry. `rules` is pure (dates, the cap, flags, the award); `service` holds the use cases; `routes` the
API. Nothing is imported here, so that catalog.models may use `rules` without a cycle."""
