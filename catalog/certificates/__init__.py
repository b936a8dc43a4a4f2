"""Certificates (R28, fraud 18): issued from the registered ledger entries (never typed in), a PDF in
Chinese with a unique serial, a verification code and a QR code, verified publicly (rate-limited, no
oracle), revoked with a reason. `routes` holds the HTTP side (ROUTES, the CERTIFICATES app key); `rules`
the pure rules; `issue`, `verify`, `revoke`, `records` the services; `pdf` the document."""
