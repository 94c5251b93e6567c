"""Typed errors for what a card answers."""

from __future__ import annotations


class CardError(Exception):
    """Something about the card (not the transport) went wrong."""


class UnsupportedCardError(CardError):
    """The card is not a type Anjuka issues on."""


class ApduError(CardError):
    """The card answered a command with an error status word."""

    def __init__(self, sw: int, message: str = "") -> None:
        self.sw = sw
        super().__init__(f"{message or 'card error'} (SW {sw:04X})")


class AuthenticationError(ApduError):
    """The card rejected a key or cryptogram (63xx)."""

    @property
    def tries_left(self) -> int | None:
        """Remaining attempts when the card says so (63Cx), else None."""
        return self.sw & 0x0F if self.sw & 0xFFF0 == 0x63C0 else None


class AuthenticationBlocked(AuthenticationError):
    """The key's retry counter is exhausted (6983): the card must be replaced."""


class SecurityStatusNotSatisfied(ApduError):
    """The command needs an authentication that has not happened (6982)."""


class ConditionsNotSatisfied(ApduError):
    """Conditions of use not satisfied (6985), e.g. no challenge before authenticate."""


class CommandNotAllowed(ApduError):
    """Command not allowed in the current state (6986)."""


class FileNotFound(ApduError):
    """File, application or block not found (6A82)."""


class WrongLength(ApduError):
    """Lc or Le is wrong for this command (6700)."""


class WrongParameters(ApduError):
    """P1/P2 are wrong, e.g. an offset outside the file (6A86, 6B00)."""


class NotEnoughMemory(ApduError):
    """The data does not fit in the file (6A84)."""


class InvalidKeyData(ApduError):
    """Key number not valid (PC/SC) or key data failed its check (6988)."""


class ReferenceDataNotUsable(ApduError):
    """The referenced key is not loaded or not usable (6984)."""


class NotSupported(ApduError):
    """Instruction, class or function not supported (6D00, 6E00, 6A81)."""


class CardCheckError(CardError):
    """The card's content or answer is inconsistent (e.g. a read-back mismatch)."""
