"""Offline training (线下培训, 上门培训): venues show a rotating signed QR code, learners sign in and out with
it on their phones, and the interval between becomes pending `offline` credit (docs/offline.md).

`rules` (pure: codes, hours, the credit of intervals), `service` (sign-in, sign-out, the venue's code,
the attendance list), `corrections` (staff corrections, audited), `settlement` (offline ledger entries),
`qr` (the SVG), `routes` (the API's ROUTES, added by catalog.api)."""
