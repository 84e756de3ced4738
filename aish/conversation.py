"""Turning a session window into the chat a provider receives, with attribution between AIs."""

from __future__ import annotations

from aish.messages import ChatMessage, Message
from aish.specialists import Specialist

SHARED_NOTE = (
    "\n\nThis is a shared session: other AI specialists take part too. Their replies appear as "
    "'NAME-ai said: ...'. Build on them where useful, but answer as yourself."
)


def build_chat(specialist: Specialist, window: list[Message], shared: bool) -> list[ChatMessage]:
    persona = specialist.persona + (SHARED_NOTE if shared else "")
    chat = [ChatMessage("system", persona)]
    for message in window:
        if message.note:  # context aish added (a merged branch's summary): nobody's words
            chat.append(ChatMessage("user", f"(Note: {message.content})"))
        elif message.role == "user":
            chat.append(ChatMessage("user", message.content))
        elif message.ai == specialist.name:
            chat.append(ChatMessage("assistant", message.content))
        else:
            chat.append(ChatMessage("user", f"{message.ai}-ai said: {message.content}"))
    return chat
