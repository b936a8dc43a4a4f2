"""The room channel's domain: who is in a room, chat, questions, hands, the stage, presence checks and what
the live room is publishing (told by the rooms: `set_media`).

Pure code (no aiohttp, no clock, no I/O): every operation takes `now` (epoch seconds) and returns the
*effects* the transport must carry out — messages to an audience, events to publish, timers to start —
so that the rules can be tested as tables. `streaming.channel` is the transport.
"""

from __future__ import annotations

import json
import math
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal, NewType

from infra.errors import DomainError
from infra.events import (
    AttentionChanged,
    Event,
    LiveHeartbeat,
    PresenceCheckAnswered,
    PresenceCheckIssued,
)
from infra.text import UnsafeText, normalise
from streaming.room_media import MediaState

PersonId = NewType("PersonId", int)
ConnId = NewType("ConnId", int)
CheckId = NewType("CheckId", str)
Role = Literal["expert", "staff", "learner"]
ROLES: Final[tuple[Role, ...]] = ("expert", "staff", "learner")
Message = dict[str, Any]

# Close codes the transport uses (4000–4999 are for applications, RFC 6455 §7.4.2). Clients do not
# reconnect after 4000, 4001 or 4003.
CLOSE_SESSION_ENDED: Final = 4000
CLOSE_REPLACED: Final = 4001  # the person opened more sockets in this room than allowed: oldest closed
CLOSE_REVOKED: Final = 4003  # the person may no longer be in this room (withdrew from the course)
CLOSE_TOO_SLOW: Final = 4008


class ChannelError(DomainError):
    """A message the room refuses; answered with {"type": "error", "code": ...}, never a disconnect."""

    def __init__(
        self, code: str, message: str, *, field: str | None = None, in_reply_to: str | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.code = code
        self.in_reply_to = in_reply_to  # the "type" of the refused message, when it had a known one

    def to_wire(self) -> Message:
        return {
            "type": "error",
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "in_reply_to": self.in_reply_to,
        }


@dataclass(frozen=True)
class Limits:
    """Bounds of one room and one connection. Tests shorten the presence-check window."""

    max_message_bytes: int = 4096  # bigger text messages get error "too_large"
    max_frame_bytes: int = 64 * 1024  # bigger frames close the socket (1009): never even buffered
    rate_per_s: float = 10.0  # frames per connection (text or binary), token bucket
    burst: int = 20
    # Sockets one person may have open in one room (a phone, a laptop, a spare tab): a newer one closes
    # the oldest (CLOSE_REPLACED), so that a rate limit per socket is not multiplied by opening more.
    max_sockets_per_person: int = 3
    max_text_chars: int = 500  # chat and questions, after trimming
    max_name_chars: int = 64
    chat_history: int = 50  # recent chat sent to a joining client
    max_questions: int = 200
    max_speakers: int = 2  # = streaming.rooms.STAGE_SEATS: every speaker can publish (tested)
    max_checks: int = 100  # presence checks kept per room
    check_window_default_s: float = 60.0
    check_window_min_s: float = 10.0
    check_window_max_s: float = 300.0
    speaker_token_ttl_s: float = 300.0
    # A learner's live page sends {"type": "heartbeat"} this often; no heartbeat for more than twice this
    # closes its attention (R16). The credit policy's heartbeat_period_s (LECTERN_HEARTBEAT_PERIOD_S).
    heartbeat_period_s: float = 30.0
    send_queue: int = 256  # messages waiting for one slow client before it is disconnected


# -- participants --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Participant:
    person_id: PersonId
    name: str
    role: Role

    def to_wire(self) -> Message:
        return {"person_id": self.person_id, "name": self.name, "role": self.role}


def participant_from_claims(person_id: int, role: str, extra: dict[str, Any], limits: Limits) -> Participant:
    """Who a verified room token names; ChannelError("forbidden") for a role the room does not know."""
    if role not in ROLES:
        raise ChannelError("forbidden", f"role {role!r} may not join a room")
    raw_name = extra.get("name")
    try:  # names are normalised on the way in too; this covers names stored before that
        name = normalise(raw_name).strip()[: limits.max_name_chars] if isinstance(raw_name, str) else ""
    except UnsafeText:
        name = ""
    return Participant(PersonId(person_id), name or f"#{person_id}", role)


# -- commands (client → server) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Chat:
    wire: ClassVar[str] = "chat"
    text: str


@dataclass(frozen=True)
class Ask:
    wire: ClassVar[str] = "ask"
    text: str


@dataclass(frozen=True)
class Upvote:
    wire: ClassVar[str] = "upvote"
    question_id: int


@dataclass(frozen=True)
class MarkAnswered:
    wire: ClassVar[str] = "mark_answered"
    question_id: int
    answered: bool


@dataclass(frozen=True)
class RaiseHand:
    wire: ClassVar[str] = "raise_hand"


@dataclass(frozen=True)
class LowerHand:
    wire: ClassVar[str] = "lower_hand"


@dataclass(frozen=True)
class Promote:
    wire: ClassVar[str] = "promote"
    person_id: PersonId


@dataclass(frozen=True)
class Demote:
    wire: ClassVar[str] = "demote"
    person_id: PersonId


@dataclass(frozen=True)
class IssueCheck:
    wire: ClassVar[str] = "presence_check"
    window_s: float


@dataclass(frozen=True)
class AnswerCheck:
    wire: ClassVar[str] = "presence_answer"
    check_id: CheckId
    nonce: str  # the person's nonce from the prompt: only a page that showed the prompt has it


@dataclass(frozen=True)
class Heartbeat:
    wire: ClassVar[str] = "heartbeat"
    seq: int | None = None  # the page's sequence number on this connection (None: an older page)
    visible: bool | None = None  # the page's visibility, if it says (as a `visibility` report would)


@dataclass(frozen=True)
class Visibility:
    wire: ClassVar[str] = "visibility"
    visible: bool


@dataclass(frozen=True)
class EndSession:
    wire: ClassVar[str] = "end_session"


Command = (
    Chat
    | Ask
    | Upvote
    | MarkAnswered
    | RaiseHand
    | LowerHand
    | Promote
    | Demote
    | IssueCheck
    | AnswerCheck
    | Heartbeat
    | Visibility
    | EndSession
)

COMMAND_TYPES: Final = frozenset(
    c.wire
    for c in (
        Chat,
        Ask,
        Upvote,
        MarkAnswered,
        RaiseHand,
        LowerHand,
        Promote,
        Demote,
        IssueCheck,
        AnswerCheck,
        Heartbeat,
        Visibility,
        EndSession,
    )
)
EXPERT_ONLY: Final = (MarkAnswered, Promote, Demote, IssueCheck, EndSession)
LEARNER_ONLY: Final = (RaiseHand, LowerHand, AnswerCheck)


def parse_command(raw: str, limits: Limits) -> Command:
    """One client text message as a Command; ChannelError names what is wrong with it."""
    if len(raw.encode()) > limits.max_message_bytes:
        raise ChannelError("too_large", f"messages are limited to {limits.max_message_bytes} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested arrays deeper than Python's stack
        raise ChannelError("invalid_json", "message is not valid JSON") from None
    if not isinstance(data, dict):
        raise ChannelError("invalid_message", "message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ChannelError("invalid_message", "message needs a string type", field="type")
    try:
        return _command(kind, data, limits)
    except ChannelError as exc:
        if kind in COMMAND_TYPES:
            exc.in_reply_to = kind
        raise


def _command(kind: str, data: dict[str, Any], limits: Limits) -> Command:
    match kind:
        case "chat":
            return Chat(_text(data, "text", limits))
        case "ask":
            return Ask(_text(data, "text", limits))
        case "upvote":
            return Upvote(_positive_int(data, "question_id"))
        case "mark_answered":
            answered = data.get("answered", True)
            if not isinstance(answered, bool):
                raise ChannelError("invalid_message", "answered must be true or false", field="answered")
            return MarkAnswered(_positive_int(data, "question_id"), answered)
        case "raise_hand":
            return RaiseHand()
        case "lower_hand":
            return LowerHand()
        case "promote":
            return Promote(PersonId(_positive_int(data, "person_id")))
        case "demote":
            return Demote(PersonId(_positive_int(data, "person_id")))
        case "presence_check":
            return IssueCheck(_window(data, limits))
        case "presence_answer":
            check_id = data.get("check_id")
            if not isinstance(check_id, str) or not 0 < len(check_id) <= 64:
                raise ChannelError("invalid_message", "check_id must be a check's id", field="check_id")
            nonce = data.get("nonce")
            if not isinstance(nonce, str) or not 0 < len(nonce) <= 64:
                raise ChannelError("invalid_message", "nonce must be the prompt's nonce", field="nonce")
            return AnswerCheck(CheckId(check_id), nonce)
        case "heartbeat":
            seq = data.get("seq")
            if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq < 2**62):
                raise ChannelError("invalid_message", "seq must be a positive integer", field="seq")
            visible = data.get("visible")
            if visible is not None and not isinstance(visible, bool):
                raise ChannelError("invalid_message", "visible must be true or false", field="visible")
            return Heartbeat(seq, visible)
        case "visibility":
            visible = data.get("visible")
            if not isinstance(visible, bool):
                raise ChannelError("invalid_message", "visible must be true or false", field="visible")
            return Visibility(visible)
        case "end_session":
            return EndSession()
    raise ChannelError("unknown_type", f"unknown message type {kind[:32]!r}", field="type")


def _text(data: dict[str, Any], name: str, limits: Limits) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ChannelError("invalid_message", f"{name} must be a string", field=name)
    try:  # one line, NFC, no bidi or control characters (infra.text); a lone surrogate is refused
        value = normalise(value).strip()
    except UnsafeText as exc:
        raise ChannelError("invalid_message", f"{name} {exc}", field=name) from None
    if not value:
        raise ChannelError("invalid_message", f"{name} must not be empty", field=name)
    if len(value) > limits.max_text_chars:
        raise ChannelError(
            "invalid_message", f"{name} is limited to {limits.max_text_chars} characters", field=name
        )
    return value


def _positive_int(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ChannelError("invalid_message", f"{name} must be a positive integer", field=name)
    return value


def _window(data: dict[str, Any], limits: Limits) -> float:
    value = data.get("window_s", limits.check_window_default_s)
    # isfinite only on floats: a huge JSON integer would raise OverflowError there (the range check follows).
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or (isinstance(value, float) and not math.isfinite(value)):
        raise ChannelError("invalid_message", "window_s must be a number of seconds", field="window_s")
    if not limits.check_window_min_s <= value <= limits.check_window_max_s:
        raise ChannelError(
            "invalid_message",
            f"window_s must be between {limits.check_window_min_s:g} and {limits.check_window_max_s:g}",
            field="window_s",
        )
    return float(value)


# -- effects (what the transport must do) ---------------------------------------------------------------


@dataclass(frozen=True)
class Everyone:
    pass


@dataclass(frozen=True)
class Others:
    """Everyone but the connections of one person."""

    person_id: PersonId


@dataclass(frozen=True)
class Experts:
    pass


@dataclass(frozen=True)
class Learners:
    pass


@dataclass(frozen=True)
class Person:
    """Every connection of one person."""

    person_id: PersonId


@dataclass(frozen=True)
class Conn:
    conn_id: ConnId


Audience = Everyone | Others | Experts | Learners | Person | Conn


@dataclass(frozen=True)
class Send:
    to: Audience
    message: Message


@dataclass(frozen=True)
class Publish:
    """Publish on the bus before anything else of the same operation is done (see RoomState.handle)."""

    event: Event


@dataclass(frozen=True)
class StartTimer:
    """Call RoomState.close_check(check_id, now) once `now` ≥ deadline_at."""

    check_id: CheckId
    deadline_at: float


@dataclass(frozen=True)
class WatchAttention:
    """Call RoomState.attention_due(conn_id, now) once `now` ≥ due_at (replacing the conn's earlier timer)."""

    conn_id: ConnId
    due_at: float


@dataclass(frozen=True)
class GrantSpeaker:
    """Mint a speaker (WHIP) token for `person_id` and send it, in a "promoted" message, to `to`."""

    to: Audience
    person_id: PersonId


@dataclass(frozen=True)
class RequestEnd:
    """The expert asked to end the session; whoever owns the live room decides."""


@dataclass(frozen=True)
class EndStage:
    """`person_id` left the stage: whoever owns the live room ends their publication (frees the seat)."""

    person_id: PersonId


Effect = Send | Publish | StartTimer | WatchAttention | GrantSpeaker | RequestEnd | EndStage


# -- room state -----------------------------------------------------------------------------------------


def wire_time(at: float) -> str:
    """An instant as ISO 8601 in UTC, as on the bus (docs/events.md)."""
    return datetime.fromtimestamp(at, UTC).isoformat()


@dataclass
class Question:
    id: int
    author: Participant
    text: str
    asked_at: float
    voters: set[PersonId] = field(default_factory=set)
    answered: bool = False

    def sort_key(self) -> tuple[bool, int, float, int]:
        return (self.answered, -len(self.voters), self.asked_at, self.id)

    def to_wire(self) -> Message:
        return {
            "id": self.id,
            "person_id": self.author.person_id,
            "name": self.author.name,
            "text": self.text,
            "votes": len(self.voters),
            "answered": self.answered,
            "asked_at": wire_time(self.asked_at),
        }


@dataclass
class PresenceCheck:
    id: CheckId
    issued_at: float
    deadline_at: float
    window_s: float
    asked: set[PersonId] = field(default_factory=set)  # learners the check was sent to
    answers: dict[PersonId, float] = field(default_factory=dict)  # person → answered_at
    closed: bool = False
    # Per person: the nonce their prompt carried (an answer must echo it) and when it was first sent to
    # them (the answer's latency is measured from then).
    nonces: dict[PersonId, str] = field(default_factory=dict)
    prompted_at: dict[PersonId, float] = field(default_factory=dict)

    def is_open(self, now: float) -> bool:
        return not self.closed and now <= self.deadline_at

    def prompt_for(self, person_id: PersonId, now: float, new_nonce: Callable[[], str]) -> Message:
        """The prompt for one person, with their nonce (made, and the time noted, the first time)."""
        nonce = self.nonces.get(person_id)
        if nonce is None:
            nonce = self.nonces[person_id] = new_nonce()
            self.prompted_at[person_id] = now
        return {
            "type": "presence_check",
            "check_id": self.id,
            "nonce": nonce,
            "deadline_at": wire_time(self.deadline_at),
            "window_s": self.window_s,
        }

    def tally(self) -> Message:
        return {
            "type": "presence_tally",
            "check_id": self.id,
            "answered": len(self.answers),
            "expected": len(self.asked),
            "deadline_at": wire_time(self.deadline_at),
            "closed": self.closed,
        }


def _new_check_id() -> str:
    return secrets.token_hex(8)


def _new_nonce() -> str:
    return secrets.token_urlsafe(16)


@dataclass
class Attention:
    """What the channel knows of one learner connection's page: whether it counts as attending (as last
    published), what the page last reported and when its last heartbeat came."""

    key: str  # the connection's id on the bus (unique across restarts, unlike ConnId)
    visible: bool = False  # as last published in attention.changed
    reported_visible: bool | None = None  # the page's last visibility report (None: none yet)
    last_beat: float = 0.0
    last_seq: int = 0  # of the last heartbeat stored as live.heartbeat evidence


class RoomState:
    """Everything the channel knows about one live session's room; lives while someone is connected."""

    def __init__(
        self,
        session_id: int,
        limits: Limits,
        *,
        media: MediaState | None = None,
        new_check_id: Callable[[], str] = _new_check_id,
        new_nonce: Callable[[], str] = _new_nonce,
    ) -> None:
        self.session_id = session_id
        self.limits = limits
        self._new_check_id = new_check_id
        self._new_nonce = new_nonce
        self._attention: dict[ConnId, Attention] = {}
        self._conns: dict[ConnId, Participant] = {}
        self._people: dict[PersonId, Participant] = {}  # first connection's identity, join order
        self._chat: deque[Message] = deque(maxlen=limits.chat_history)
        self._chat_seq = 0
        self._questions: dict[int, Question] = {}
        self._question_seq = 0
        self._hands: dict[PersonId, float] = {}  # person → raised_at, in raise order
        self._stage: dict[PersonId, Participant] = {}  # in promotion order
        self._checks: dict[CheckId, PresenceCheck] = {}
        self._media = media if media is not None else MediaState(session_id)

    # -- queries -----------------------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        return not self._conns

    def participant(self, conn: ConnId) -> Participant:
        return self._conns[conn]

    def viewer_count(self) -> int:
        """Learners in the room, each person counted once however many connections they have."""
        return sum(1 for p in self._people.values() if p.role == "learner")

    def participants(self) -> list[Message]:
        return [p.to_wire() for p in self._people.values()]

    def questions(self) -> list[Question]:
        """Unanswered before answered, then most votes, then oldest first."""
        return sorted(self._questions.values(), key=Question.sort_key)

    def hands(self) -> list[Message]:
        return [{**self._people[p].to_wire(), "raised_at": wire_time(at)} for p, at in self._hands.items()]

    def stage(self) -> list[Message]:
        return [p.to_wire() for p in self._stage.values()]

    @property
    def media(self) -> MediaState:
        return self._media

    def check(self, check_id: str) -> PresenceCheck | None:
        return self._checks.get(CheckId(check_id))

    def resolve(self, audience: Audience) -> list[ConnId]:
        """The connections an audience names, in join order."""
        match audience:
            case Conn(conn_id):
                return [conn_id] if conn_id in self._conns else []
            case Person(person_id):
                return [c for c, p in self._conns.items() if p.person_id == person_id]
            case Others(person_id):
                return [c for c, p in self._conns.items() if p.person_id != person_id]
            case Experts():
                return [c for c, p in self._conns.items() if p.role == "expert"]
            case Learners():
                return [c for c, p in self._conns.items() if p.role == "learner"]
            case Everyone():
                return list(self._conns)

    # -- membership --------------------------------------------------------------------------------

    def join(self, conn: ConnId, who: Participant, now: float) -> list[Effect]:
        """A connection arrived: it gets a snapshot; the others hear of a new person (not a new tab)."""
        first = who.person_id not in self._people
        viewers_before = self.viewer_count()
        self._conns[conn] = who
        if first:
            self._people[who.person_id] = who
        effects: list[Effect] = [Send(Conn(conn), self._welcome(who))]
        if first:
            effects.append(Send(Others(who.person_id), {"type": "joined", "participant": who.to_wire()}))
        if self.viewer_count() != viewers_before:
            effects.append(Send(Everyone(), self._viewer_count()))
        if who.role == "learner":
            for check in self._checks.values():
                if check.is_open(now) and who.person_id not in check.answers:
                    new_to_check = who.person_id not in check.asked
                    check.asked.add(who.person_id)
                    effects.append(Send(Conn(conn), check.prompt_for(who.person_id, now, self._new_nonce)))
                    if new_to_check:
                        effects.append(Send(Experts(), check.tally()))
            if who.person_id in self._stage:
                # A speaker whose page reloaded needs a fresh token to publish again.
                effects.append(GrantSpeaker(Conn(conn), who.person_id))
            self._attention[conn] = Attention(key=self._new_nonce()[:16])
        return effects

    def surplus(self, person_id: int) -> list[ConnId]:
        """The person's connections to close, oldest first, so that one more fits within
        `max_sockets_per_person` (the transport closes them with CLOSE_REPLACED)."""
        own = [c for c, p in self._conns.items() if p.person_id == person_id]
        keep = max(0, self.limits.max_sockets_per_person - 1)
        return own[: max(0, len(own) - keep)]

    def expel(self, person_id: int) -> list[Effect]:
        """The person may no longer be here (they withdrew from the course): off the stage (ending their
        publication) and out of the hand queue now. Their connections are closed by the transport
        (CLOSE_REVOKED); `leave` then tells the others they left."""
        pid = PersonId(person_id)
        effects: list[Effect] = []
        if self._hands.pop(pid, None) is not None:
            effects.append(Send(Experts(), self._hands_message()))
        if self._stage.pop(pid, None) is not None:
            effects += [Send(Everyone(), self._stage_message()), EndStage(pid)]
        return effects

    def leave(self, conn: ConnId, now: float, *, reason: str = "closed") -> list[Effect]:
        """A connection went away (`reason` "closed", or "superseded" when a newer socket of the person
        replaced it): its attention ends (published first); the person leaves when their last connection
        does."""
        who = self._conns.pop(conn, None)
        attention = self._attention.pop(conn, None)
        ended: list[Effect] = []
        if who is not None and attention is not None and attention.visible:
            ended = [self._attention_changed(who, attention, False, now, reason)]
        if who is None or any(p.person_id == who.person_id for p in self._conns.values()):
            return ended
        viewers_before = self.viewer_count()
        del self._people[who.person_id]
        effects: list[Effect] = [*ended, Send(Everyone(), {"type": "left", "person_id": who.person_id})]
        if self.viewer_count() != viewers_before:
            effects.append(Send(Everyone(), self._viewer_count()))
        if self._hands.pop(who.person_id, None) is not None:
            effects.append(Send(Experts(), self._hands_message()))
        # A speaker stays on stage: their WHIP publication is a separate connection that may live on,
        # and a reloading page gets a fresh token on join. The expert demotes explicitly.
        return effects

    # -- media -------------------------------------------------------------------------------------

    def set_media(self, media: MediaState) -> list[Effect]:
        """The live room's publications changed: everyone hears the new state (nothing if unchanged)."""
        if media.session_id != self.session_id:
            raise ValueError(f"media of session {media.session_id} told to the room of {self.session_id}")
        if media == self._media:
            return []
        self._media = media
        return [Send(Everyone(), self._media_message())]

    # -- commands ----------------------------------------------------------------------------------

    def handle(self, conn: ConnId, command: Command, now: float) -> list[Effect]:
        """Apply one client command. Publish effects come first: the transport publishes them before it
        sends anything, and stops (reporting "unavailable") if the bus refuses."""
        who = self._conns[conn]
        if isinstance(command, EXPERT_ONLY) and who.role != "expert":
            raise ChannelError("forbidden", "only the session's expert may do this")
        if isinstance(command, LEARNER_ONLY) and who.role != "learner":
            raise ChannelError("forbidden", "only learners may do this")
        match command:
            case Chat(text):
                return self._chat_message(who, text, now)
            case Ask(text):
                return self._ask(who, text, now)
            case Upvote(question_id):
                return self._upvote(who, question_id)
            case MarkAnswered(question_id, answered):
                return self._mark_answered(question_id, answered)
            case RaiseHand():
                return self._raise_hand(who, now)
            case LowerHand():
                return self._lower_hand(who)
            case Promote(person_id):
                return self._promote(person_id)
            case Demote(person_id):
                return self._demote(person_id)
            case IssueCheck(window_s):
                return self._issue_check(window_s, now)
            case AnswerCheck(check_id, nonce):
                return self._answer_check(who, check_id, nonce, now)
            case Heartbeat(seq, visible):
                return self._heartbeat(conn, who, seq, visible, now)
            case Visibility(visible):
                return self._attend(conn, who, visible, now)
            case EndSession():
                return [RequestEnd()]

    def _chat_message(self, who: Participant, text: str, now: float) -> list[Effect]:
        self._chat_seq += 1
        message = {
            "type": "chat",
            "id": self._chat_seq,
            "person_id": who.person_id,
            "name": who.name,
            "role": who.role,
            "text": text,
            "at": wire_time(now),
        }
        self._chat.append(message)
        return [Send(Everyone(), message)]

    def _ask(self, who: Participant, text: str, now: float) -> list[Effect]:
        if len(self._questions) >= self.limits.max_questions:
            raise ChannelError("too_many_questions", "this room holds no more questions")
        self._question_seq += 1
        self._questions[self._question_seq] = Question(self._question_seq, who, text, now)
        return [Send(Everyone(), self._questions_message())]

    def _upvote(self, who: Participant, question_id: int) -> list[Effect]:
        question = self._question(question_id)
        if question.author.person_id == who.person_id:
            raise ChannelError("own_question", "you cannot upvote your own question")
        if who.person_id in question.voters:
            raise ChannelError("already_voted", "you already upvoted this question")
        question.voters.add(who.person_id)
        return [Send(Everyone(), self._questions_message())]

    def _mark_answered(self, question_id: int, answered: bool) -> list[Effect]:
        question = self._question(question_id)
        if question.answered == answered:
            return []
        question.answered = answered
        return [Send(Everyone(), self._questions_message())]

    def _question(self, question_id: int) -> Question:
        question = self._questions.get(question_id)
        if question is None:
            raise ChannelError("not_found", f"no question {question_id}", field="question_id")
        return question

    def _raise_hand(self, who: Participant, now: float) -> list[Effect]:
        if who.person_id in self._stage:
            raise ChannelError("on_stage", "you are already on stage")
        hand = {"type": "hand", "raised": True}
        if who.person_id in self._hands:
            return [Send(Person(who.person_id), hand)]
        self._hands[who.person_id] = now
        return [Send(Person(who.person_id), hand), Send(Experts(), self._hands_message())]

    def _lower_hand(self, who: Participant) -> list[Effect]:
        hand = {"type": "hand", "raised": False}
        if self._hands.pop(who.person_id, None) is None:
            return [Send(Person(who.person_id), hand)]
        return [Send(Person(who.person_id), hand), Send(Experts(), self._hands_message())]

    def _promote(self, person_id: PersonId) -> list[Effect]:
        target = self._people.get(person_id)
        if target is None:
            raise ChannelError("not_found", f"person {person_id} is not in the room", field="person_id")
        if target.role != "learner":
            raise ChannelError("invalid_message", "only learners can be promoted", field="person_id")
        if person_id in self._stage:
            return [GrantSpeaker(Person(person_id), person_id)]  # a fresh token, nothing else changes
        if len(self._stage) >= self.limits.max_speakers:
            raise ChannelError("stage_full", f"at most {self.limits.max_speakers} speakers at once")
        self._stage[person_id] = target
        effects: list[Effect] = [GrantSpeaker(Person(person_id), person_id)]
        if self._hands.pop(person_id, None) is not None:
            effects.append(Send(Person(person_id), {"type": "hand", "raised": False}))
            effects.append(Send(Experts(), self._hands_message()))
        effects.append(Send(Everyone(), self._stage_message()))
        return effects

    def _demote(self, person_id: PersonId) -> list[Effect]:
        if self._stage.pop(person_id, None) is None:
            raise ChannelError("not_on_stage", f"person {person_id} is not on stage", field="person_id")
        return [
            Send(Person(person_id), {"type": "demoted"}),
            Send(Everyone(), self._stage_message()),
            EndStage(person_id),
        ]

    def _issue_check(self, window_s: float, now: float) -> list[Effect]:
        if len(self._checks) >= self.limits.max_checks:
            raise ChannelError("too_many_checks", "this room holds no more presence checks")
        check_id = CheckId(self._new_check_id())
        check = PresenceCheck(check_id, now, now + window_s, window_s)
        check.asked = {p.person_id for p in self._people.values() if p.role == "learner"}
        self._checks[check_id] = check
        issued = PresenceCheckIssued(
            session_id=self.session_id,
            check_id=check_id,
            issued_at=_utc(check.issued_at),
            deadline_at=_utc(check.deadline_at),
        )
        prompts: list[Effect] = [
            Send(Person(person_id), check.prompt_for(person_id, now, self._new_nonce))
            for person_id in (p.person_id for p in self._people.values() if p.role == "learner")
        ]
        return [
            Publish(issued),
            StartTimer(check_id, check.deadline_at),
            *prompts,
            Send(Experts(), check.tally()),
        ]

    def withdraw_check(self, check_id: str) -> None:
        """Forget a check whose issued event could not be published (nobody was prompted yet)."""
        self._checks.pop(CheckId(check_id), None)

    def _answer_check(self, who: Participant, check_id: CheckId, nonce: str, now: float) -> list[Effect]:
        check = self._checks.get(check_id)
        if check is None:
            raise ChannelError("not_found", "no such presence check", field="check_id")
        expected = check.nonces.get(who.person_id)
        if expected is None or not secrets.compare_digest(expected.encode(), nonce.encode()):
            # Only the page that showed this person the prompt knows the nonce (fraud 3).
            raise ChannelError("bad_nonce", "this answer does not echo the prompt's nonce", field="nonce")
        answered_at = check.answers.get(who.person_id)
        if answered_at is None:
            if not check.is_open(now):
                raise ChannelError("check_expired", "the presence check's window has passed")
            answered_at = check.answers[who.person_id] = now
            check.asked.add(who.person_id)
            after: list[Effect] = [Send(Experts(), check.tally())]
        else:
            # Answered before: publish again (consumers are idempotent) so that an answer whose event
            # the bus refused the first time can be retried; nothing changes for the expert.
            after = []
        answered = PresenceCheckAnswered(
            session_id=self.session_id,
            check_id=check_id,
            person_id=who.person_id,
            answered_at=_utc(answered_at),
            latency_ms=max(0, round((answered_at - check.prompted_at[who.person_id]) * 1000)),
        )
        ack = {"type": "presence_ack", "check_id": check_id, "answered_at": wire_time(answered_at)}
        return [Publish(answered), Send(Person(who.person_id), ack), *after]

    def close_check(self, check_id: str, now: float) -> list[Effect]:
        """The deadline passed: the expert gets the final tally. Nothing is published: a missed answer
        is an issued check without an answered event."""
        check = self._checks.get(CheckId(check_id))
        if check is None or check.closed or now < check.deadline_at:
            return []
        check.closed = True
        return [Send(Experts(), check.tally())]

    # -- attention ---------------------------------------------------------------------------------

    def _attend(self, conn: ConnId, who: Participant, visible: bool | None, now: float) -> list[Effect]:
        """A heartbeat (`visible` None) or a visibility report from a learner's page. Visible on the first
        visible report or heartbeat; hidden on a report of hidden (heartbeats of a hidden page, which
        browsers keep sending, change nothing). Each of them re-arms the heartbeat-gap timer."""
        attention = self._attention.get(conn)
        if attention is None:  # not a learner: their pages may send these too, nothing is measured
            return []
        if visible is not None:
            attention.reported_visible = visible
        attention.last_beat = now
        effects: list[Effect] = []
        showing = attention.reported_visible is not False
        if showing and not attention.visible:
            effects.append(self._attention_changed(who, attention, True, now, "shown"))
        elif not showing and attention.visible:
            effects.append(self._attention_changed(who, attention, False, now, "hidden"))
        effects.append(WatchAttention(conn, now + 2 * self.limits.heartbeat_period_s))
        return effects

    def _heartbeat(
        self, conn: ConnId, who: Participant, seq: int | None, visible: bool | None, now: float
    ) -> list[Effect]:
        """A learner's heartbeat: attention as for `_attend`, then the heartbeat itself as raw evidence
        (`live.heartbeat`), then `heartbeat_ack` to the page, sent once the evidence is published (the
        transport publishes first). `seq` must increase per connection; without one (an older page) the
        next number is taken."""
        attention = self._attention.get(conn)
        if attention is None:  # not a learner: nothing is measured, nothing acknowledged
            return []
        if seq is None:
            seq = attention.last_seq + 1
        elif seq <= attention.last_seq:
            raise ChannelError(
                "invalid_message", f"seq must increase (the last was {attention.last_seq})", field="seq"
            )
        effects = self._attend(conn, who, visible, now)
        attention.last_seq = seq
        beat = LiveHeartbeat(
            session_id=self.session_id,
            person_id=who.person_id,
            client_id=attention.key,
            seq=seq,
            at=_utc(now),
            visible=attention.visible,
        )
        publications = [e for e in effects if isinstance(e, Publish)]
        rest = [e for e in effects if not isinstance(e, Publish)]
        return [*publications, Publish(beat), *rest, Send(Conn(conn), {"type": "heartbeat_ack", "seq": seq})]

    def attention_due(self, conn: ConnId, now: float) -> list[Effect]:
        """The heartbeat-gap timer of `conn` fired: its attention closes (R16) if no heartbeat came for
        more than twice the period, at the moment the gap passed that bound."""
        attention = self._attention.get(conn)
        who = self._conns.get(conn)
        if attention is None or who is None or not attention.visible:
            return []
        gap_ends = attention.last_beat + 2 * self.limits.heartbeat_period_s
        if now < gap_ends:
            return [WatchAttention(conn, gap_ends)]
        return [self._attention_changed(who, attention, False, gap_ends, "heartbeat_gap")]

    def attention(self, conn: ConnId) -> Attention | None:
        return self._attention.get(conn)

    def _attention_changed(
        self, who: Participant, attention: Attention, visible: bool, at: float, reason: str
    ) -> Publish:
        attention.visible = visible
        return Publish(
            AttentionChanged(
                session_id=self.session_id,
                person_id=who.person_id,
                conn_id=attention.key,
                visible=visible,
                at=_utc(at),
                reason=reason,
            )
        )

    # -- messages ----------------------------------------------------------------------------------

    def _welcome(self, who: Participant) -> Message:
        message: Message = {
            "type": "welcome",
            "session_id": self.session_id,
            "you": who.to_wire(),
            "participants": self.participants(),
            "viewer_count": self.viewer_count(),
            "chat": list(self._chat),
            "questions": [q.to_wire() for q in self.questions()],
            "stage": self.stage(),
            "media": self._media.fields(),
            "heartbeat_period_s": self.limits.heartbeat_period_s,
        }
        if who.role == "learner":
            message["hand_raised"] = who.person_id in self._hands
        if who.role == "expert":
            message["hands"] = self.hands()
            message["checks"] = [c.tally() for c in self._checks.values()]
        return message

    def _viewer_count(self) -> Message:
        return {"type": "viewer_count", "count": self.viewer_count()}

    def _questions_message(self) -> Message:
        return {"type": "questions", "questions": [q.to_wire() for q in self.questions()]}

    def _hands_message(self) -> Message:
        return {"type": "hands", "queue": self.hands()}

    def _stage_message(self) -> Message:
        return {"type": "stage", "speakers": self.stage()}

    def _media_message(self) -> Message:
        return {"type": "media", **self._media.fields()}


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


# -- rate limiting --------------------------------------------------------------------------------------


class TokenBucket:
    """`rate_per_s` messages a second on average, `burst` at once; `now` is passed in."""

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self._rate_per_s = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        # A clock that steps back never adds tokens.
        self._tokens = min(self._burst, self._tokens + max(0.0, now - self._at) * self._rate_per_s)
        self._at = max(self._at, now)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
