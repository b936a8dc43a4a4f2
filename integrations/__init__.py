"""Tencent Meeting and DingTalk: API clients, webhooks, linking and credentials, and the one normalized
form (`integrations.records.ExternalRecord`) every way in (API pull, webhook, file) produces."""
