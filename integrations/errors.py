"""What a platform call can fail with, as domain errors (infra.http maps them to the one JSON shape).
Messages name the platform and its own error code, never a credential."""

from __future__ import annotations

from infra.errors import Invalid, NotFound, Unavailable


class WrongCredentials(Invalid):
    """The platform refused our credentials (bad SecretId/SecretKey/AppId, AppKey/AppSecret)."""

    code = "platform_credentials_rejected"


class UnknownMeeting(NotFound):
    """The platform does not know the meeting, conference or live broadcast (or not for this account)."""

    code = "platform_meeting_not_found"


class PlatformRefused(Invalid):
    """Any other refusal by the platform (permissions, limits, parameters); `details` has its code."""

    code = "platform_refused"


class PlatformUnavailable(Unavailable):
    """5xx or timeouts after every retry."""

    code = "platform_unavailable"
